#include "bench_steps.h"

namespace harness {
namespace cu = grpst::cuda;

// B decode rows at context ctx (each sequence owns ceil(ctx/16) consecutive blocks).
cu::StepInput decode_step(StepBuffers& b, int B, int ctx, int vocab) {
  const int bps = (ctx + 15) / 16;
  std::vector<int32_t> tok(B), pos(B, ctx - 1), slot(B), seq(B), tables(size_t(B) * bps);
  for (int i = 0; i < B; ++i) {
    tok[i] = (i * 7919) % vocab;
    seq[i] = i;
    for (int j = 0; j < bps; ++j) tables[size_t(i) * bps + j] = i * bps + j;
    slot[i] = tables[size_t(i) * bps + (ctx - 1) / 16] * 16 + (ctx - 1) % 16;
  }
  b.tokens.upload(tok);
  b.positions.upload(pos);
  b.slots.upload(slot);
  b.token_seq.upload(seq);
  b.tables.upload(tables);
  cu::StepInput in;
  in.num_tokens = B;
  in.num_decode = B;
  in.tokens = b.tokens.p;
  in.positions = b.positions.p;
  in.slots = b.slots.p;
  in.token_seq = b.token_seq.p;
  in.prefill = cu::PrefillBatch{0, 0, 0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0};
  in.tables = cu::PagedTables{b.tables.p, bps};
  in.num_logits = B;
  in.max_context = ctx;
  return in;
}

// One sequence of T prompt tokens prefilled [start, start + chunk).
cu::StepInput prefill_step(StepBuffers& b, int start, int chunk, int total, int vocab) {
  const int bps = (total + 15) / 16;
  std::vector<int32_t> tok(chunk), pos(chunk), slot(chunk), seq(chunk, 0), tables(bps);
  for (int j = 0; j < bps; ++j) tables[j] = j;
  for (int i = 0; i < chunk; ++i) {
    tok[i] = ((start + i) * 7919) % vocab;
    pos[i] = start + i;
    slot[i] = pos[i];
  }
  b.tokens.upload(tok);
  b.positions.upload(pos);
  b.slots.upload(slot);
  b.token_seq.upload(seq);
  b.tables.upload(tables);
  b.q_start.upload({0});
  b.q_len.upload({chunk});
  b.ctx_len.upload({start + chunk});
  b.seq_index.upload({0});
  b.logit_rows.upload({chunk - 1});
  cu::StepInput in;
  in.num_tokens = chunk;
  in.num_decode = 0;
  in.tokens = b.tokens.p;
  in.positions = b.positions.p;
  in.slots = b.slots.p;
  in.token_seq = b.token_seq.p;
  in.prefill = cu::PrefillBatch{1, chunk, chunk, b.q_start.p, b.q_len.p, b.ctx_len.p, b.seq_index.p, nullptr, nullptr, 0};
  in.tables = cu::PagedTables{b.tables.p, bps};
  in.num_logits = 1;
  in.logit_rows = b.logit_rows.p;
  in.max_context = start + chunk;
  return in;
}

// Captures one decode step as a graph and returns ms per replay (-1 on failure).
double decode_ms(cu::Forward& fwd, const cu::StepInput& in, float* logits, bool graph, bool pdl, cudaStream_t s) {
  const cu::Exec ex{s, pdl};
  if (!graph) return time_ms([&] { return Checks::get().status("forward eager", fwd.run(in, logits, ex)); }, 3, 20, s);
  // One eager step first: algorithm choices and shared-memory limits are settled outside capture.
  if (!Checks::get().status("forward warm-up", fwd.run(in, logits, ex))) return -1;
  cudaStreamSynchronize(s);
  cudaGraph_t g;
  cudaGraphExec_t ge;
  if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return -1;
  const cu::Status st = fwd.run(in, logits, ex);
  cudaStreamEndCapture(s, &g);
  if (!Checks::get().status("forward capture", st)) return -1;
  if (!cuda_ok(cudaGraphInstantiate(&ge, g, 0), "graph instantiate")) return -1;
  const double ms = time_ms([&] { return cudaGraphLaunch(ge, s) == cudaSuccess; }, 5, 50, s);
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  return ms;
}

}  // namespace harness
