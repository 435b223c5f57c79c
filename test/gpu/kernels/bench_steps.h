// The whole-model benches' steps: device arrays of one step, a decode or prefill batch built in
// them, a decode step timed as a replayed CUDA graph, and two settings of a switch timed in turns.
#pragma once
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "../../../native/src/runtime/cuda_forward.h"
#include "harness.h"

namespace harness {

// Device arrays of one step.
struct StepBuffers {
  Dev<int32_t> tokens, positions, slots, token_seq, tables, q_start, q_len, ctx_len, seq_index, logit_rows;
};

// B decode rows at context ctx (each sequence owns ceil(ctx/16) consecutive blocks).
grpst::cuda::StepInput decode_step(StepBuffers& b, int B, int ctx, int vocab);
// One sequence of `total` prompt tokens, prefilled [start, start + chunk).
grpst::cuda::StepInput prefill_step(StepBuffers& b, int start, int chunk, int total, int vocab);
// Captures one decode step as a graph and returns ms per replay (-1 on failure); graph = false:
// eager steps.
double decode_ms(grpst::cuda::Forward& fwd, const grpst::cuda::StepInput& in, float* logits, bool graph, bool pdl,
                 cudaStream_t s);

// A switch's two settings, off then on, at each (batch, context) back to back (another shape's
// step writes new keys into this one's history), then at one sequence once more each way. The
// step logits of the first pair at every shape: the same bits (tol 0: the switch changes no
// arithmetic), or within rel_l2 tol (it adds in another order).
template <class Set, class Report>
void compare_in_turns(const std::string& label, const std::string& off_name, const std::string& on_name,
                      const std::vector<std::pair<int, int>>& shapes, Set&& set, grpst::cuda::Forward& fwd, int vocab,
                      Report&& report, float* logits, cudaStream_t s, double tol = 0) {
  StepBuffers bufs;
  for (const auto& [B, ctx] : shapes) {
    grpst::cuda::StepInput in = decode_step(bufs, B, ctx, vocab);
    std::vector<float> got[2];
    const std::string at = "b" + std::to_string(B) + " ctx" + std::to_string(ctx) + " graph+pdl ";
    for (int turn = 0; turn < (B == 1 ? 2 : 1); ++turn)
      for (bool on : {false, true}) {
        set(on);
        report(at + (on ? on_name : off_name) + (turn ? " (again)" : ""), B, ctx, decode_ms(fwd, in, logits, true, true, s));
        if (turn > 0) continue;
        cudaStreamSynchronize(s);
        got[on].resize(static_cast<size_t>(B) * vocab);
        cudaMemcpy(got[on].data(), logits, got[on].size() * 4, cudaMemcpyDeviceToHost);
      }
    set(false);
    const std::string name = "model " + label + " b" + std::to_string(B) + " ctx" + std::to_string(ctx) + " logits";
    if (tol == 0) Checks::get().expect(name + " bits, " + on_name, !got[0].empty() && got[0] == got[1]);
    else Checks::get().compare(name + ", " + on_name + " against " + off_name, got[1], got[0], tol);
  }
}

// The decode rows (at `ctx` keys) that GRPST_BENCH_TURNS_ROWS lists ("16,32,64"; 1 to max_rows),
// or 1 and 8 when it is unset.
inline std::vector<std::pair<int, int>> turns_rows(int max_rows, int ctx) {
  const char* list = std::getenv("GRPST_BENCH_TURNS_ROWS");
  if (!list) return {{1, ctx}, {8, ctx}};
  std::vector<std::pair<int, int>> rows;
  for (const char* p = list; *p; p += *p == ',') {
    char* end = nullptr;
    const long b = std::strtol(p, &end, 10);
    if (end == p) break;
    if (b >= 1 && b <= max_rows) rows.push_back({static_cast<int>(b), ctx});
    p = end;
  }
  return rows;
}

// A switch that is an environment variable: `var` set to `off` then `on` for compare_in_turns,
// and unset afterwards (the default again).
struct EnvSwitch {
  const char* var;
  const char* off;
  const char* on;
};
template <class Report>
void compare_env_in_turns(const std::string& label, const std::string& off_name, const std::string& on_name,
                          const std::vector<std::pair<int, int>>& shapes, const EnvSwitch& sw, grpst::cuda::Forward& fwd,
                          int vocab, Report&& report, float* logits, cudaStream_t s, double tol = 0) {
  compare_in_turns(label, off_name, on_name, shapes, [&](bool on) { setenv(sw.var, on ? sw.on : sw.off, 1); }, fwd, vocab,
                   report, logits, s, tol);
  unsetenv(sw.var);
}

}  // namespace harness
