#include "bench_persistent.h"

#include <cstdio>
#include <vector>

#include "bench_steps.h"
#include "harness.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

// Runs one step of `in` with the kernel's trace on and adds a bench row `label` with the mean
// time per layer of each phase in block 0: its own work, then its wait at the grid barrier.
void persistent_breakdown(cu::Forward& fwd, const cu::StepInput& in, float* logits, int layers, const std::string& label,
                          cudaStream_t s) {
  constexpr int K = cu::kPersistentTraceStamps;
  Dev<long long> trace(static_cast<size_t>(layers) * K);
  fwd.set_persistent_trace(trace.p);
  const bool ran = Checks::get().status("persistent trace step", fwd.run(in, logits, cu::Exec{s, true})) &&
                   cuda_ok(cudaStreamSynchronize(s), "persistent trace step");
  fwd.set_persistent_trace(nullptr);
  if (!ran || !fwd.last_run_persistent() || layers < 2) return;
  const std::vector<long long> t = trace.download();
  int khz = 0;
  cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0);
  // Phase k of layer l: own work from the previous stamp (layer l - 1's last, so layer 0 is
  // skipped) to t[l][2k], the barrier wait to t[l][2k + 1].
  double sum[K] = {};
  for (int l = 1; l < layers; ++l)
    for (int k = 0; k < K; ++k) {
      const long long prev = k == 0 ? t[(l - 1) * K + K - 1] : t[l * K + k - 1];
      sum[k] += static_cast<double>(t[l * K + k] - prev);
    }
  const double us = (layers - 1) * (khz * 1e-3);  // cycles of all layers -> us per layer
  const char* names[] = {"qkv", "attention", "o_proj", "gate_up", "down"};
  std::string note = "block 0, us per layer (work / barrier):";
  double total = 0;
  for (int k = 0; k < K; ++k) total += sum[k];
  for (int p = 0; p < K / 2; ++p) {
    char part[80];
    std::snprintf(part, sizeof part, " %s %.2f / %.2f", names[p], sum[2 * p] / us, sum[2 * p + 1] / us);
    note += part;
  }
  Bench::get().add("decode", label, total / us, "us/layer", note);
}

}  // namespace

void sweep_persistent(cu::Forward& fwd, int vocab, const DecodeReport& report, float* logits, cudaStream_t s) {
  StepBuffers bufs;
  const int layers = fwd.dims().layers;
  for (int ctx : {512, 4096, 32768}) {
    cu::StepInput in = decode_step(bufs, 1, ctx, vocab);
    std::vector<float> got[2];
    for (int on : {1, 0}) {
      if (!Checks::get().status("set_persistent_decode", fwd.set_persistent_decode(on == 1, 1 << 30))) return;
      const std::string row = "b1 ctx" + std::to_string(ctx) + " graph+pdl " + (on ? "persistent kernel" : "separate kernels");
      report(row, 1, ctx, decode_ms(fwd, in, logits, true, true, s));
      if (on) persistent_breakdown(fwd, in, logits, layers, row + " phases", s);
      Checks::get().expect("persistent decode step taken only when on, ctx " + std::to_string(ctx),
                           fwd.last_run_persistent() == (on == 1));
      cudaStreamSynchronize(s);
      got[on].resize(vocab);
      cudaMemcpy(got[on].data(), logits, vocab * 4, cudaMemcpyDeviceToHost);
    }
    Checks::get().compare("b1 ctx" + std::to_string(ctx) + " step logits, persistent kernel against the separate kernels",
                          got[1], got[0], 0.1);
    if (ctx != 512) continue;
    // The same launches without the arithmetic and the attention: the data movement alone.
    if (!Checks::get().status("set_persistent_decode", fwd.set_persistent_decode(true, 1 << 30))) return;
    fwd.set_persistent_stream_only(true);
    const std::string row = "b1 ctx512 graph+pdl persistent kernel, weight stream and barriers only";
    report(row, 1, ctx, decode_ms(fwd, in, logits, true, true, s));
    persistent_breakdown(fwd, in, logits, layers, row + ", phases", s);
    fwd.set_persistent_stream_only(false);
  }
  Checks::get().status("set_persistent_decode", fwd.set_persistent_decode(cu::kDefaultPersistentDecode));
}

}  // namespace harness
