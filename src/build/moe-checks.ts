// What a build of a Qwen3-MoE checkpoint cannot do yet, refused before any work (checks.ts runs
// this first), each with the way that works. A native MoE engine is written in any --qformat (the
// calibrated ones from each expert's own inputs: src/quant/expert-stats.ts), and from an AutoAWQ or
// block-scaled FP8 checkpoint; it runs in one rank, on the CPU backend or on CUDA, in every format,
// and calibrates on either (the CUDA forward hands each expert's inputs to the calibration as the
// CPU forward does).
import { isSparseLayer } from '../model/moe-tensors.js';
import { badInput } from '../util/errors.js';
import type { SourceModel } from './native/source.js';
import type { BuildSettings } from './options.js';

export function checkMoeBuild(s: BuildSettings, src: SourceModel): void {
  const m = src.checkpoint.model;
  if (!m.moe) return;
  const what = `${src.checkpoint.dir} is a Qwen3-MoE checkpoint`;
  if (s.backend === 'trtllm') return checkTrtllmMoe(s, src, what);
  if (s.tp_size > 1) {
    throw badInput(`--tp_size ${s.tp_size}: tensor parallelism is not available for Qwen3-MoE engines yet (${what})`, 'build with --tp_size 1 (the default); the engine runs on the CPU backend');
  }
  checkLoraTargets(src);
}

/**
 * An adapter merges into the tensors it names; a sparse layer has no mlp.gate_proj / up_proj /
 * down_proj (its MLP is the experts), so an adapter of those would be dropped there unseen.
 */
function checkLoraTargets(src: SourceModel): void {
  if (!src.lora) return;
  const m = src.checkpoint.model;
  for (const [tensor, d] of src.lora.deltas) {
    if (!isSparseLayer(m, d.layer) || src.checkpoint.tensors.has(tensor)) continue;
    throw badInput(
      `--merge_lora: the adapter ${src.lora.name} adapts ${tensor.replace(/\.weight$/, '')}, which ${src.checkpoint.dir} does not have: layer ${d.layer} of this Qwen3-MoE model is ${m.moe!.numExperts} experts and a router, and adapters of experts are not merged`,
      'merge an adapter of the attention projections (q_proj, k_proj, v_proj, o_proj) only, or merge the adapter with PEFT (merge_and_unload(), then save_pretrained) and build that checkpoint',
    );
  }
}

/**
 * TensorRT-LLM converts Qwen3-MoE itself (qwen_type qwen3_moe); grpst refuses only what its
 * commands cannot carry: an AutoAWQ MoE checkpoint (convert_checkpoint.py's AutoAWQ path is for
 * dense projections), and a tensor-parallel split that leaves experts unevenly cut.
 */
function checkTrtllmMoe(s: BuildSettings, src: SourceModel, what: string): void {
  const m = src.checkpoint.model;
  if (src.awq) {
    throw badInput(
      `${what} quantized by AutoAWQ; grpst passes AWQ checkpoints to TensorRT-LLM for dense Qwen3 models only`,
      'drop --backend trtllm (the native backend converts it as it is), or give TensorRT-LLM the unquantized checkpoint with --qformat int4_awq',
    );
  }
  const expert = m.moe!.intermediateSize;
  if (s.tp_size > 1 && expert % s.tp_size !== 0) {
    throw badInput(
      `--tp_size ${s.tp_size} does not divide moe_intermediate_size ${expert}: TensorRT-LLM splits every expert across the ranks (--moe_tp_size ${s.tp_size})`,
      `pass a --tp_size that divides ${expert}`,
    );
  }
}
