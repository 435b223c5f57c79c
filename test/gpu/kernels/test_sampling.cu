// Parity: GPU sampling against the sampler's semantics. Greedy (with penalties) must pick the
// twin's argmax exactly; stochastic settings are checked by support (never a token outside the
// twin's kept set) and by the total-variation distance of many seeded draws from the twin's
// renormalized distribution; the same (seed, step) must give the same token.
#include <algorithm>
#include <map>
#include <numeric>

#include "harness.h"
#include "reference.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

cu::SampleParams params(float temp, int top_k, float top_p, float min_p, int slot = -1, uint64_t seed = 7, uint64_t step = 0) {
  cu::SampleParams p{};
  p.temperature = temp;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.repetition_penalty = 1.f;
  p.presence_penalty = 0.f;
  p.frequency_penalty = 0.f;
  p.row = 0;
  p.slot = slot;
  p.seed = seed;
  p.step = step;
  return p;
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

void check_distribution(const std::string& name, const std::vector<float>& logits, cu::SampleParams p, int draws) {
  const int V = static_cast<int>(logits.size());
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
  if (!Checks::get().status(name, cu::sample(dl.p, dp.p, {nullptr, nullptr}, draws, V, work.p, tok.p, nullptr, {}))) return;
  const auto got = tok.download();
  const auto want = kept_distribution(logits, p);
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
  const int V = 151936, B = 3;
  std::vector<float> logits(static_cast<size_t>(B) * V);
  for (auto& v : logits) v = r.sym(8.f);
  logits[5000] = 20.f;           // row 0: clear max
  logits[V + 10] = 20.f;         // row 1: a tie, the lower index wins
  logits[V + 900] = 20.f;
  logits[2 * V + 77] = 20.f;     // row 2: the max is penalized below the runner-up
  logits[2 * V + 78] = 19.f;
  const int slots = 4;
  std::vector<int32_t> counts(static_cast<size_t>(slots) * V, 0);
  std::vector<uint32_t> mask(static_cast<size_t>(slots) * ((V + 31) / 32), 0);
  counts[static_cast<size_t>(2) * V + 77] = 3;  // slot 2 generated token 77 three times
  mask[static_cast<size_t>(2) * ((V + 31) / 32) + 78 / 32] |= 1u << (78 % 32);  // 78 in the prompt
  std::vector<cu::SampleParams> ps = {params(0, 0, 1, 0), params(0, 0, 1, 0), params(0, 0, 1, 0, 2)};
  for (int b = 0; b < B; ++b) ps[b].row = b;
  ps[2].repetition_penalty = 1.1f;
  ps[2].presence_penalty = 0.5f;
  ps[2].frequency_penalty = 0.4f;
  Dev<float> dl(logits), work(logits.size()), lp(B);
  Dev<cu::SampleParams> dp(ps);
  Dev<int32_t> dc(counts), tok(B);
  Dev<uint32_t> dm(mask);
  Checks::get().status("sample greedy", cu::sample(dl.p, dp.p, {dc.p, dm.p}, B, V, work.p, tok.p, lp.p, {}));
  const auto got = tok.download();
  // row 2 twin: 77 -> 20/1.1 - 3*0.4 - 0.5 = 16.48; 78 -> 19/1.1 = 17.27 -> 78 wins
  Checks::get().expect("sample greedy argmax", got[0] == 5000, std::to_string(got[0]));
  Checks::get().expect("sample greedy tie -> lowest index", got[1] == 10, std::to_string(got[1]));
  Checks::get().expect("sample penalties change the argmax", got[2] == 78, std::to_string(got[2]));
  const auto lps = lp.download();
  for (int b = 0; b < B; ++b) {
    double mx = -1e30, z = 0;
    for (int i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(logits[static_cast<size_t>(b) * V + i]));
    for (int i = 0; i < V; ++i) z += std::exp(logits[static_cast<size_t>(b) * V + i] - mx);
    const double want = logits[static_cast<size_t>(b) * V + got[b]] - mx - std::log(z);
    Checks::get().expect("sample logprob row " + std::to_string(b), std::fabs(lps[b] - want) < 1e-3,
                         std::to_string(lps[b]) + " vs " + std::to_string(want));
  }
  const auto c2 = dc.download();
  Checks::get().expect("sample counts the sampled token", c2[static_cast<size_t>(2) * V + 78] == 1 && c2[static_cast<size_t>(2) * V + 77] == 3);
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

  // Same (seed, step): same token; another seed: (almost surely) a different sequence.
  std::vector<float> all(static_cast<size_t>(64) * V);
  std::vector<cu::SampleParams> a(64), b(64);
  for (int i = 0; i < 64; ++i) {
    std::copy(logits.begin(), logits.end(), all.begin() + static_cast<size_t>(i) * V);
    a[i] = params(1.f, 0, 1.f, 0.f, -1, 1234, i);
    b[i] = params(1.f, 0, 1.f, 0.f, -1, 999, i);
    a[i].row = b[i].row = i;
  }
  Dev<float> dl(all), work(all.size());
  Dev<cu::SampleParams> da(a), db(b);
  Dev<int32_t> t1(64), t2(64), t3(64);
  cu::sample(dl.p, da.p, {nullptr, nullptr}, 64, V, work.p, t1.p, nullptr, {});
  cu::sample(dl.p, da.p, {nullptr, nullptr}, 64, V, work.p, t2.p, nullptr, {});
  cu::sample(dl.p, db.p, {nullptr, nullptr}, 64, V, work.p, t3.p, nullptr, {});
  Checks::get().expect("sample seeded: same seed, same tokens", t1.download() == t2.download());
  Checks::get().expect("sample seeded: other seed, other tokens", t1.download() != t3.download());
}

}  // namespace

void test_sampling() {
  test_greedy_and_penalties();
  test_stochastic();
}

}  // namespace harness
