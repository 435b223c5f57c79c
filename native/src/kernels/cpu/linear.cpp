// Threading for every weight format: output columns are cut into tasks that the pool hands
// out dynamically. A column's value never depends on the cut, so results are the same for
// any thread count.
#include "grpst/linear.h"

#include <algorithm>
#include <vector>

namespace grpst {

extern const LinearFormatOps kLinearBf16;
extern const LinearFormatOps kLinearInt8Wo, kLinearInt4, kLinearFp8, kLinearInt8Sq;

const LinearFormatOps& linear_format_ops(WeightFormat fmt) {
  switch (fmt) {
    case WeightFormat::BF16:
      return kLinearBf16;
    case WeightFormat::INT8_WO:
      return kLinearInt8Wo;
    case WeightFormat::INT4:
      return kLinearInt4;
    case WeightFormat::FP8:
      return kLinearFp8;
    case WeightFormat::INT8_SQ:
      return kLinearInt8Sq;
  }
  throw Error("unknown weight format " + std::to_string(int(fmt)));
}

WeightFormat weight_format_for_scheme(const std::string& scheme) {
  if (scheme.empty() || scheme == "none" || scheme == "bf16" || scheme == "full_prec") return WeightFormat::BF16;
  if (scheme == "int8_wo") return WeightFormat::INT8_WO;
  if (scheme == "int4_awq") return WeightFormat::INT4;
  if (scheme == "fp8") return WeightFormat::FP8;
  if (scheme == "int8_sq") return WeightFormat::INT8_SQ;
  throw Error("quantization scheme \"" + scheme + "\" has no CPU kernels in this build");
}

namespace {

struct ColumnTask {
  int weight;
  int n0, n1;
};

// About 16 tasks per thread: a thread that the OS deschedules mid-job holds up at most one
// small task. Boundaries on multiples of 16 keep register tiles whole.
std::vector<ColumnTask> make_tasks(const LinearWeight* const* ws, int count, int M, int threads) {
  int64_t total = 0;
  for (int i = 0; i < count; i++) total += ws[i]->out_features;
  int64_t per = std::max<int64_t>(16, total / (int64_t(threads) * 16));
  per = (per + 15) / 16 * 16;
  std::vector<ColumnTask> tasks;
  for (int i = 0; i < count; i++) {
    const int n = ws[i]->out_features;
    for (int n0 = 0; n0 < n; n0 += int(per)) tasks.push_back({i, n0, int(std::min<int64_t>(n, n0 + per))});
  }
  return tasks;
}

}  // namespace

void linear_forward_multi(const LinearWeight* const* ws, float* const* ys, int count, const float* x, int M,
                          const CpuKernels& k, ThreadPool& pool) {
  if (M <= 0) return;
  const int in = ws[0]->in_features;
  for (int i = 1; i < count; i++)
    if (ws[i]->in_features != in) throw Error("linear_forward_multi: projections disagree on in_features");
  thread_local std::vector<std::vector<uint8_t>> bufs;
  if (int(bufs.size()) < count) bufs.resize(count);
  std::vector<const void*> prepared(count, nullptr);
  for (int i = 0; i < count; i++) {
    const LinearFormatOps& ops = linear_format_ops(ws[i]->fmt);
    if (!ops.prepare) continue;
    int same = -1;  // an earlier projection of this call whose operand this one can read
    for (int j = 0; ops.prepare_shared && j < i && same < 0; j++)
      if (ws[j]->fmt == ws[i]->fmt && prepared[j]) same = j;
    prepared[i] = same >= 0 ? prepared[same] : ops.prepare(*ws[i], k, x, in, M, bufs[i], pool);
  }
  std::vector<ColumnTask> tasks = make_tasks(ws, count, M, pool.size());
  pool.parallel_for(int(tasks.size()), [&](int t, int) {
    const ColumnTask& task = tasks[t];
    const LinearWeight& w = *ws[task.weight];
    linear_format_ops(w.fmt).columns(w, k, x, in, prepared[task.weight], ys[task.weight], w.out_features, M, task.n0,
                                     task.n1);
  });
}

void linear_forward(const LinearWeight& w, const float* x, float* y, int M, const CpuKernels& k, ThreadPool& pool) {
  const LinearWeight* ws[1] = {&w};
  float* ys[1] = {y};
  linear_forward_multi(ws, ys, 1, x, M, k, pool);
}

}  // namespace grpst
