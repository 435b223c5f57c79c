// Parity: GPU sampling against the sampler's semantics. Greedy (with penalties) must pick the
// twin's argmax exactly; stochastic settings are checked by support (never a token outside the
// twin's kept set) and by the total-variation distance of many seeded draws from the twin's
// renormalized distribution; the same (seed, step) must give the same token.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "grpst/device_sampler_twin.h"
#include "harness.h"
#include "reference.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

cu::SampleParams params(float temp, int top_k, float top_p, float min_p, uint64_t seed = 7, uint64_t step = 0) {
  cu::SampleParams p{};
  p.temperature = temp;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.repetition_penalty = 1.f;
  p.presence_penalty = 0.f;
  p.frequency_penalty = 0.f;
  p.row = 0;
  p.prompt_begin = p.prompt_count = p.output_begin = p.output_count = 0;
  p.edit_begin = p.edit_count = 0;
  p.mask = -1;
  p.seed = seed;
  p.step = step;
  return p;
}

// A row's history, as the host sampler keeps it: distinct prompt tokens, (token, count) of the output.
struct History {
  std::vector<int32_t> prompt;
  std::vector<std::pair<int32_t, int32_t>> output;
};

// The twin of the penalties (the host sampler's apply_penalties): repetition over prompt and
// output tokens (once each), then presence / frequency over output tokens.
std::vector<float> penalized(std::vector<float> l, const History& h, const cu::SampleParams& p) {
  auto rep = [&](int32_t t) { l[t] = l[t] > 0 ? l[t] / p.repetition_penalty : l[t] * p.repetition_penalty; };
  if (p.repetition_penalty != 1.f) {
    for (int32_t t : h.prompt) rep(t);
    for (auto [t, c] : h.output)
      if (std::find(h.prompt.begin(), h.prompt.end(), t) == h.prompt.end()) rep(t);
  }
  for (auto [t, c] : h.output) l[t] -= p.frequency_penalty * static_cast<float>(c) + p.presence_penalty;
  return l;
}

// Device lists holding one history for every row (ranges from 0).
struct DevHistory {
  Dev<int32_t> prompt;
  Dev<int2> output;
  explicit DevHistory(const History& h)
      : prompt(h.prompt.empty() ? std::vector<int32_t>{0} : h.prompt), output(pairs(h)) {}
  static std::vector<int2> pairs(const History& h) {
    std::vector<int2> v;
    for (auto [t, c] : h.output) v.push_back(int2{t, c});
    if (v.empty()) v.push_back(int2{0, 0});
    return v;
  }
  cu::SampleHistory view() const { return {prompt.p, output.p, nullptr, nullptr}; }
};

void set_history(cu::SampleParams& p, const History& h) {
  p.prompt_begin = p.output_begin = 0;
  p.prompt_count = static_cast<int>(h.prompt.size());
  p.output_count = static_cast<int>(h.output.size());
}

// The twin's distribution after temperature, top_k, top_p (over the top_k survivors), min_p.
std::vector<double> kept_distribution(const std::vector<float>& logits, const cu::SampleParams& p) {
  const int V = static_cast<int>(logits.size());
  std::vector<double> l(V);
  for (int i = 0; i < V; ++i) l[i] = static_cast<double>(logits[i]) / p.temperature;
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
  std::vector<bool> keep(V, true);
  if (p.top_k > 0 && p.top_k < V) {
    const double kth = l[order[p.top_k - 1]];
    for (int i = 0; i < V; ++i) keep[i] = l[i] >= kth;
  }
  const double mx = l[order[0]];
  if (p.top_p < 1.f) {
    double z = 0;
    for (int i = 0; i < V; ++i) if (keep[i]) z += std::exp(l[i] - mx);
    double above = 0;
    std::vector<bool> kp(V, false);
    for (int j = 0; j < V; ++j) {
      const int i = order[j];
      if (!keep[i]) continue;
      if (above < p.top_p * z) kp[i] = true;
      above += std::exp(l[i] - mx);
    }
    for (int i = 0; i < V; ++i) keep[i] = keep[i] && kp[i];
  }
  if (p.min_p > 0)
    for (int i = 0; i < V; ++i) keep[i] = keep[i] && (l[i] >= mx + std::log(p.min_p));
  std::vector<double> prob(V, 0.0);
  double z = 0;
  for (int i = 0; i < V; ++i) if (keep[i]) z += (prob[i] = std::exp(l[i] - mx));
  for (auto& v : prob) v /= z;
  return prob;
}

void check_distribution(const std::string& name, const std::vector<float>& logits, cu::SampleParams p, int draws,
                        const History& h = {}) {
  const int V = static_cast<int>(logits.size());
  set_history(p, h);
  const DevHistory dh(h);
  // One row per draw: the same logits, steps 0..draws-1.
  std::vector<float> all(static_cast<size_t>(draws) * V);
  std::vector<cu::SampleParams> ps(draws, p);
  for (int i = 0; i < draws; ++i) {
    std::copy(logits.begin(), logits.end(), all.begin() + static_cast<size_t>(i) * V);
    ps[i].step = i;
    ps[i].row = i;
  }
  Dev<float> dl(all), work(all.size());
  Dev<cu::SampleParams> dp(ps);
  Dev<int32_t> tok(draws);
  if (!Checks::get().status(name, cu::sample(dl.p, dp.p, dh.view(), draws, V, work.p, tok.p, nullptr, {}))) return;
  const auto got = tok.download();
  const auto want = kept_distribution(penalized(logits, h, p), p);
  std::vector<double> freq(V, 0.0);
  int outside = 0;
  for (int t : got) {
    if (t < 0 || t >= V || want[t] == 0.0) { ++outside; continue; }
    freq[t] += 1.0 / draws;
  }
  double tv = 0;
  for (int i = 0; i < V; ++i) tv += std::fabs(freq[i] - want[i]);
  tv *= 0.5;
  int support = 0;
  for (double w : want) support += w > 0 ? 1 : 0;
  Checks::get().expect(name + " support", outside == 0, std::to_string(outside) + " draws outside the kept set of " + std::to_string(support));
  // With `draws` samples over `support` outcomes the expected TV is about sqrt(support / draws) / 2.
  const double bound = 0.05 + 1.2 * std::sqrt(static_cast<double>(support) / draws);
  Checks::get().expect(name + " distribution", tv <= bound, "TV " + std::to_string(tv) + " bound " + std::to_string(bound));
}

void test_greedy_and_penalties() {
  Rng r(901);
  const int V = 151936, B = 4;
  std::vector<float> logits(static_cast<size_t>(B) * V);
  for (auto& v : logits) v = r.sym(8.f);
  logits[5000] = 20.f;           // row 0: clear max
  logits[V + 10] = 20.f;         // row 1: a tie, the lower index wins
  logits[V + 900] = 20.f;
  logits[2 * V + 77] = 20.f;     // row 2: the max is penalized below the runner-up
  logits[2 * V + 78] = 19.f;
  logits[3 * V + 300] = -1.f;    // row 3: everything negative; the repetition penalty pushes the
  logits[3 * V + 301] = -1.05f;  // prompt's -1 below an unseen -1.05 (multiplied, not divided)
  for (int i = 0; i < V; ++i) logits[3 * V + i] = i == 300 || i == 301 ? logits[3 * V + i] : -2.f - std::fabs(logits[3 * V + i]);
  // Rows 2 and 3 take their history from one pair of lists at different offsets.
  const std::vector<int32_t> prompt = {999, 78, 5, 300};                        // row 2: {78}, row 3: {300}
  const std::vector<int2> output = {int2{7, 2}, int2{77, 3}, int2{78, 1}, int2{12, 1}};  // row 2: 77 x3, 78 x1
  std::vector<cu::SampleParams> ps = {params(0, 0, 1, 0), params(0, 0, 1, 0), params(0, 0, 1, 0), params(0, 0, 1, 0)};
  for (int b = 0; b < B; ++b) ps[b].row = b;
  ps[2].repetition_penalty = 1.1f;
  ps[2].presence_penalty = 0.5f;
  ps[2].frequency_penalty = 0.4f;
  ps[2].prompt_begin = 1, ps[2].prompt_count = 1;
  ps[2].output_begin = 1, ps[2].output_count = 2;
  ps[3].repetition_penalty = 1.1f;
  ps[3].prompt_begin = 3, ps[3].prompt_count = 1;
  Dev<float> dl(logits), work(logits.size()), lp(B);
  Dev<cu::SampleParams> dp(ps);
  Dev<int32_t> dpr(prompt), tok(B);
  Dev<int2> dout(output);
  Checks::get().status("sample greedy", cu::sample(dl.p, dp.p, {dpr.p, dout.p, nullptr, nullptr}, B, V, work.p, tok.p, lp.p, {}));
  const auto got = tok.download();
  // row 2 twin: 77 -> 20/1.1 - 3*0.4 - 0.5 = 16.48; 78 (prompt and output once) -> 19/1.1 - 0.4 - 0.5
  // = 16.37: 77 wins, where 78 with only its prompt entry applied (17.27) would.
  const auto twin2 = penalized(std::vector<float>(logits.begin() + 2 * V, logits.begin() + 3 * V),
                               History{{78}, {{77, 3}, {78, 1}}}, ps[2]);
  const int want2 = static_cast<int>(std::max_element(twin2.begin(), twin2.end()) - twin2.begin());
  Checks::get().expect("sample greedy argmax", got[0] == 5000, std::to_string(got[0]));
  Checks::get().expect("sample greedy tie -> lowest index", got[1] == 10, std::to_string(got[1]));
  Checks::get().expect("sample penalties from both lists = twin", got[2] == want2 && want2 == 77, std::to_string(got[2]) + " twin " + std::to_string(want2));
  Checks::get().expect("sample repetition multiplies a negative logit", got[3] == 301, std::to_string(got[3]));
  const auto lps = lp.download();
  for (int b = 0; b < B; ++b) {
    double mx = -1e30, z = 0;
    for (int i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(logits[static_cast<size_t>(b) * V + i]));
    for (int i = 0; i < V; ++i) z += std::exp(logits[static_cast<size_t>(b) * V + i] - mx);
    const double want = logits[static_cast<size_t>(b) * V + got[b]] - mx - std::log(z);
    Checks::get().expect("sample logprob row " + std::to_string(b), std::fabs(lps[b] - want) < 1e-3,
                         std::to_string(lps[b]) + " vs " + std::to_string(want));
  }
  // The logits are left as they were (the host may read a device-sampled row's neighbours).
  Checks::get().expect("sample leaves the logits", dl.download() == logits);
}

void test_stochastic() {
  Rng r(911);
  const int V = 2000;
  std::vector<float> logits(V);
  for (auto& v : logits) v = r.sym(3.f);
  for (int i = 0; i < 20; ++i) logits[r.below(V)] += 4.f;  // a few strong candidates
  check_distribution("sample top_k=10", logits, params(1.f, 10, 1.f, 0.f), 4000);
  check_distribution("sample top_p=0.6", logits, params(1.f, 0, 0.6f, 0.f), 4000);
  check_distribution("sample min_p=0.2", logits, params(1.f, 0, 1.f, 0.2f), 4000);
  check_distribution("sample t=0.7 k=50 p=0.9 min_p=0.05", logits, params(0.7f, 50, 0.9f, 0.05f), 4000);
  check_distribution("sample t=1.5 full vocab", logits, params(1.5f, 0, 1.f, 0.f), 6000);
  // Penalized: the history moves mass off the strong candidates (and min_p's bar with the max).
  std::vector<int> strong;
  for (int i = 0; i < V; ++i) if (logits[i] > 3.f) strong.push_back(i);
  History h;
  for (size_t j = 0; j < strong.size(); ++j) {
    if (j % 2 == 0) h.prompt.push_back(strong[j]);
    if (j % 3 != 1) h.output.push_back({strong[j], 1 + static_cast<int>(j % 4)});
  }
  cu::SampleParams pen = params(0.8f, 40, 0.95f, 0.02f);
  pen.repetition_penalty = 1.3f;
  pen.presence_penalty = 0.6f;
  pen.frequency_penalty = 0.3f;
  check_distribution("sample penalized t=0.8 k=40 p=0.95 min_p=0.02", logits, pen, 6000, h);
  cu::SampleParams neg = params(1.f, 0, 1.f, 0.1f);
  neg.presence_penalty = -2.f;  // a negative presence penalty favours what was said
  check_distribution("sample presence -2 min_p=0.1", logits, neg, 4000, h);

  // Same (seed, step): same token; another seed: (almost surely) a different sequence.
  std::vector<float> all(static_cast<size_t>(64) * V);
  std::vector<cu::SampleParams> a(64), b(64);
  for (int i = 0; i < 64; ++i) {
    std::copy(logits.begin(), logits.end(), all.begin() + static_cast<size_t>(i) * V);
    a[i] = params(1.f, 0, 1.f, 0.f, 1234, i);
    b[i] = params(1.f, 0, 1.f, 0.f, 999, i);
    a[i].row = b[i].row = i;
  }
  Dev<float> dl(all), work(all.size());
  Dev<cu::SampleParams> da(a), db(b);
  Dev<int32_t> t1(64), t2(64), t3(64);
  cu::sample(dl.p, da.p, {nullptr, nullptr, nullptr, nullptr}, 64, V, work.p, t1.p, nullptr, {});
  cu::sample(dl.p, da.p, {nullptr, nullptr, nullptr, nullptr}, 64, V, work.p, t2.p, nullptr, {});
  cu::sample(dl.p, db.p, {nullptr, nullptr, nullptr, nullptr}, 64, V, work.p, t3.p, nullptr, {});
  Checks::get().expect("sample seeded: same seed, same tokens", t1.download() == t2.download());
  Checks::get().expect("sample seeded: other seed, other tokens", t1.download() != t3.download());
}

// Top logprobs against the twin (the host sampler's list: best first, ties to the lower id,
// log-softmax of the raw row in double): two rows of one batch, ties and a NaN included.
void test_top_logprobs() {
  Rng r(977);
  const int V = 151936;
  std::vector<float> logits(static_cast<size_t>(3) * V);
  for (auto& v : logits) v = r.sym(6.f);
  for (int i = 0; i < 12; ++i) logits[r.below(V)] = 9.f;           // row 0: a twelve-way tie at the top
  logits[V + 123] = std::numeric_limits<float>::quiet_NaN();         // row 1: a NaN is never listed
  logits[V + 124] = 30.f;
  const std::vector<cu::TopLogprobsRow> rows = {{0, 20, -1}, {1, 5, -1}, {2, 1, -1}};
  Dev<float> dl(logits);
  Dev<cu::TopLogprobsRow> dr(rows);
  const int R = static_cast<int>(rows.size());
  Dev<int32_t> tok(static_cast<size_t>(R) * cu::kMaxTopLogprobs);
  Dev<float> lp(static_cast<size_t>(R) * cu::kMaxTopLogprobs);
  if (!Checks::get().status("top_logprobs", cu::top_logprobs(dl.p, dr.p, R, V, tok.p, lp.p, nullptr, nullptr, {}))) return;
  const auto got_t = tok.download();
  const auto got_l = lp.download();
  for (int b = 0; b < R; ++b) {
    const float* x = logits.data() + static_cast<size_t>(rows[b].row) * V;
    std::vector<int> order;
    for (int i = 0; i < V; ++i) if (!std::isnan(x[i])) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](int a, int c) { return x[a] > x[c]; });
    double mx = -1e30, z = 0;
    for (int i : order) mx = std::max(mx, static_cast<double>(x[i]));
    for (int i = 0; i < V; ++i) z += std::exp(static_cast<double>(x[i]) - mx);  // NaN poisons the sum, as on the device
    const double lse = mx + std::log(z);
    bool same = true;
    double worst = 0;
    for (int k = 0; k < rows[b].n; ++k) {
      const int t = got_t[static_cast<size_t>(b) * cu::kMaxTopLogprobs + k];
      same = same && t == order[k];
      const double want = x[order[k]] - lse;
      const float g = got_l[static_cast<size_t>(b) * cu::kMaxTopLogprobs + k];
      worst = std::isnan(want) ? (std::isnan(g) ? worst : 1e9) : std::max(worst, std::fabs(g - want));
    }
    Checks::get().expect("top_logprobs row " + std::to_string(b) + " order = twin", same);
    Checks::get().expect("top_logprobs row " + std::to_string(b) + " logprobs", worst < 1e-4, std::to_string(worst));
  }

  // Prompt logprob rows against the twin (draw_device_samples_on_host): a target in the
  // twelve-way tie (its rank counts every tie), a NaN target (rank 1), an ordinary one without top
  // entries, and a row read twice; logprob, rank and top entries.
  grpst::StepBatch batch;
  int tied = 0;
  while (logits[tied] != 9.f) ++tied;
  batch.device_prompt_rows = {{0, tied, 3}, {1, 123, 2}, {2, 4567, 0}, {0, 77, 20}};
  const int P = static_cast<int>(batch.device_prompt_rows.size());
  std::vector<cu::TopLogprobsRow> prow;
  for (const auto& p : batch.device_prompt_rows) prow.push_back({p.logit_row, p.top_n, p.target});
  Dev<cu::TopLogprobsRow> dpr(prow);
  Dev<int32_t> ptok(static_cast<size_t>(P) * cu::kMaxTopLogprobs), prank(P);
  Dev<float> plp(static_cast<size_t>(P) * cu::kMaxTopLogprobs), ptarget(P);
  if (!Checks::get().status("top_logprobs prompt rows", cu::top_logprobs(dl.p, dpr.p, P, V, ptok.p, plp.p, ptarget.p, prank.p, {}))) return;
  grpst::DeviceDrawResults twin;
  grpst::draw_device_samples_on_host(batch, logits.data(), V, twin);
  const auto ranks = prank.download(), toks = ptok.download();
  const auto lps = ptarget.download(), tlps = plp.download();
  for (int b = 0; b < P; ++b) {
    const int n = batch.device_prompt_rows[b].top_n;
    bool same_top = true;
    double worst = 0;
    for (int k = 0; k < n; ++k) {
      const size_t at = static_cast<size_t>(b) * cu::kMaxTopLogprobs + k;
      same_top = same_top && toks[at] == twin.prompt_top_tokens[at];
      if (!std::isnan(twin.prompt_top_logprobs[at])) worst = std::max(worst, static_cast<double>(std::fabs(tlps[at] - twin.prompt_top_logprobs[at])));
    }
    const bool lp_ok = std::isnan(twin.prompt_logprobs[b]) ? std::isnan(lps[b]) : std::fabs(lps[b] - twin.prompt_logprobs[b]) < 1e-4;
    Checks::get().expect("top_logprobs prompt row " + std::to_string(b) + " = twin",
                         ranks[b] == twin.prompt_ranks[b] && lp_ok && same_top && worst < 1e-4,
                         "rank " + std::to_string(ranks[b]) + " twin " + std::to_string(twin.prompt_ranks[b]) + ", logprob " +
                             std::to_string(lps[b]) + " twin " + std::to_string(twin.prompt_logprobs[b]));
  }
  const int ties = static_cast<int>(std::count(logits.begin(), logits.begin() + V, 9.f));
  Checks::get().expect("top_logprobs prompt ranks count ties and NaN", ranks[0] == ties && ties > 1 && ranks[1] == 1,
                       std::to_string(ranks[0]) + ", " + std::to_string(ranks[1]));
}

// A step's device rows as the scheduler hands them over (grpst::StepBatch), drawn by the kernel
// and by its CPU twin (draw_device_samples_on_host) from the same logits.
struct TwinRun {
  std::vector<int32_t> kernel, twin;
};
TwinRun run_against_twin(const std::string& name, const std::vector<float>& logits, int V, const grpst::StepBatch& batch) {
  const int D = static_cast<int>(batch.device_samples.size());
  std::vector<cu::SampleParams> ps;
  for (const grpst::DeviceSample& d : batch.device_samples) {
    cu::SampleParams p = params(d.temperature, d.top_k, d.top_p, d.min_p, d.seed, d.step);
    p.row = d.logit_row;
    p.repetition_penalty = d.repetition_penalty;
    p.presence_penalty = d.presence_penalty;
    p.frequency_penalty = d.frequency_penalty;
    p.prompt_begin = d.prompt_begin, p.prompt_count = d.prompt_count;
    p.output_begin = d.output_begin, p.output_count = d.output_count;
    p.edit_begin = d.edit_begin, p.edit_count = d.edit_count;
    p.mask = d.mask;
    ps.push_back(p);
  }
  auto or_one = [](auto v) { if (v.empty()) v.resize(1); return v; };
  std::vector<int2> out;
  for (size_t i = 0; i + 1 < batch.penalty_output_counts.size(); i += 2)
    out.push_back(int2{batch.penalty_output_counts[i], batch.penalty_output_counts[i + 1]});
  Dev<float> dl(logits), work(static_cast<size_t>(D) * V), lp(D);
  Dev<cu::SampleParams> dp(ps);
  Dev<int32_t> dpr(or_one(batch.penalty_prompt_tokens)), tok(D);
  Dev<int2> dout(or_one(out));
  Dev<grpst::LogitEdit> de(or_one(batch.logit_edits));
  Dev<uint32_t> dm(or_one(batch.masks));
  TwinRun r;
  if (!Checks::get().status(name, cu::sample(dl.p, dp.p, {dpr.p, dout.p, de.p, dm.p}, D, V, work.p, tok.p, lp.p, {}))) return r;
  r.kernel = tok.download();
  grpst::DeviceDrawResults twin;
  grpst::draw_device_samples_on_host(batch, logits.data(), V, twin);
  r.twin = twin.tokens;
  return r;
}

// Bans, biases and grammar masks, alone and with penalties, greedy: the kernel's token is the
// twin's on every row, and each row's rule decides it (a row that would draw the same without
// its rule proves nothing, so each is checked against the raw argmax too).
void test_edits_and_masks() {
  Rng r(933);
  const int V = 151936, W = (V + 31) / 32;
  const float ban = -std::numeric_limits<float>::infinity();
  std::vector<float> logits(static_cast<size_t>(6) * V);
  for (auto& v : logits) v = r.sym(6.f);
  for (int b = 0; b < 6; ++b) logits[static_cast<size_t>(b) * V + 1000 + b] = 12.f;  // each row's raw argmax
  // The tokens rows 0 and 1 bias sit at 0, so their biases (+7, +9) lift them past every other (at most 6).
  logits[77] = 0.f;
  logits[static_cast<size_t>(V) + 150000] = 0.f;
  grpst::StepBatch batch;
  auto row = [&](int b) {
    grpst::DeviceSample d;
    d.logit_row = b;
    d.temperature = 0.f;
    d.edit_begin = static_cast<int>(batch.logit_edits.size());
    return d;
  };
  // Row 0: its argmax banned, the runner-up biased past the rest.
  grpst::DeviceSample d0 = row(0);
  batch.logit_edits.push_back({77, 7.f});
  batch.logit_edits.push_back({1000, ban});
  d0.edit_count = 2;
  // Row 1: a bias of -100 on its argmax (OpenAI's "ban") and +9 on a low token.
  grpst::DeviceSample d1 = row(1);
  batch.logit_edits.push_back({1001, -100.f});
  batch.logit_edits.push_back({150000, 9.f});
  d1.edit_count = 2;
  // Row 2: a mask allowing 300 scattered tokens (its argmax not among them).
  grpst::DeviceSample d2 = row(2);
  d2.mask = 0;
  batch.masks.assign(static_cast<size_t>(2) * W, 0u);
  for (int k = 0; k < 300; ++k) {
    const int t = 2000 + 499 * k;
    batch.masks[t >> 5] |= 1u << (t & 31);
  }
  // Row 3: the same mask, a bias lifting an allowed token and a penalty lowering another.
  grpst::DeviceSample d3 = row(3);
  d3.mask = 0;
  batch.logit_edits.push_back({2000 + 499 * 7, 3.f});
  d3.edit_count = 1;
  d3.repetition_penalty = 1.3f;
  d3.frequency_penalty = 0.5f;
  d3.output_begin = 0, d3.output_count = 2;
  batch.penalty_output_counts = {2000 + 499 * 7, 4, 2000 + 499 * 9, 1};
  // Row 4: a mask whose only allowed token is banned: no draw (-1).
  grpst::DeviceSample d4 = row(4);
  d4.mask = 1;
  batch.masks[static_cast<size_t>(W) + (4242 >> 5)] |= 1u << (4242 & 31);
  batch.logit_edits.push_back({4242, ban});
  d4.edit_count = 1;
  // Row 5: a sampled row (temperature 0.8, top_k 50) with row 0's edits and the mask: the draw
  // stays inside the mask and matches the twin's seeded draw.
  grpst::DeviceSample d5 = row(5);
  d5.temperature = 0.8f;
  d5.top_k = 50;
  d5.seed = 42;
  d5.step = 3;
  d5.mask = 0;
  for (grpst::DeviceSample* d : {&d0, &d1, &d2, &d3, &d4, &d5}) batch.device_samples.push_back(*d);
  const TwinRun got = run_against_twin("sample edits", logits, V, batch);
  if (got.kernel.empty()) return;
  for (int b = 0; b < 6; ++b)
    Checks::get().expect("sample edits row " + std::to_string(b) + " = twin", got.kernel[b] == got.twin[b],
                         std::to_string(got.kernel[b]) + " twin " + std::to_string(got.twin[b]));
  Checks::get().expect("sample ban + bias row decided by its edits", got.kernel[0] == 77 && got.kernel[1] == 150000,
                       std::to_string(got.kernel[0]) + ", " + std::to_string(got.kernel[1]));
  auto allowed = [&](int t) { return t >= 0 && ((batch.masks[t >> 5] >> (t & 31)) & 1u); };
  Checks::get().expect("sample mask keeps the draw inside", allowed(got.kernel[2]) && allowed(got.kernel[3]) && allowed(got.kernel[5]),
                       std::to_string(got.kernel[2]) + ", " + std::to_string(got.kernel[3]) + ", " + std::to_string(got.kernel[5]));
  Checks::get().expect("sample nothing allowed draws -1", got.kernel[4] == -1, std::to_string(got.kernel[4]));
}

// Many seeded sampled rows with bans, biases, a mask and penalties: the kernel and the twin share
// the noise, so their draws agree but where float sums round a top_p cut differently.
void test_sampled_against_twin() {
  Rng r(947);
  const int V = 32000, W = (V + 31) / 32, D = 512;
  std::vector<float> logits(static_cast<size_t>(D) * V);
  for (auto& v : logits) v = r.sym(4.f);
  grpst::StepBatch batch;
  batch.masks.assign(W, 0u);
  for (int t = 0; t < V; t += 3) batch.masks[t >> 5] |= 1u << (t & 31);
  batch.penalty_prompt_tokens = {3, 6, 9, 12};
  batch.penalty_output_counts = {15, 2, 18, 1, 21, 5};
  for (int i = 0; i < 10; ++i) batch.logit_edits.push_back({i * 30, i % 3 == 0 ? -std::numeric_limits<float>::infinity() : 2.5f});
  for (int b = 0; b < D; ++b) {
    grpst::DeviceSample d;
    d.logit_row = b;
    d.temperature = 0.6f + 0.1f * static_cast<float>(b % 5);
    d.top_k = b % 4 == 0 ? 0 : 20 + b % 40;
    d.top_p = b % 3 == 0 ? 1.f : 0.9f;
    d.min_p = b % 7 == 0 ? 0.05f : 0.f;
    d.seed = 1234 + static_cast<uint64_t>(b % 9);
    d.step = static_cast<uint64_t>(b);
    d.mask = b % 2 == 0 ? 0 : -1;
    d.edit_begin = 0;
    d.edit_count = b % 5 == 0 ? 0 : 10;
    if (b % 3 == 1) {
      d.repetition_penalty = 1.2f;
      d.presence_penalty = 0.4f;
      d.frequency_penalty = 0.2f;
      d.prompt_count = 4;
      d.output_count = 3;
    }
    batch.device_samples.push_back(d);
  }
  const TwinRun got = run_against_twin("sample sampled vs twin", logits, V, batch);
  if (got.kernel.empty()) return;
  int same = 0, outside = 0;
  for (int b = 0; b < D; ++b) {
    same += got.kernel[b] == got.twin[b] ? 1 : 0;
    const int t = got.kernel[b];
    if (b % 2 == 0 && (t < 0 || !((batch.masks[t >> 5] >> (t & 31)) & 1u))) ++outside;
  }
  Checks::get().expect("sample sampled rows = twin's draws", same >= D - D / 50, std::to_string(same) + " of " + std::to_string(D));
  Checks::get().expect("sample sampled masked rows stay inside", outside == 0, std::to_string(outside));
}

}  // namespace

void test_sampling() {
  test_greedy_and_penalties();
  test_stochastic();
  test_top_logprobs();
  test_edits_and_masks();
  test_sampled_against_twin();
}

}  // namespace harness
