// TensorRT-LLM's Qwen config (tensorrt_llm/models/qwen/config.py, from_hugging_face) writes
// moe.normalization_mode NONE for every Qwen MoE checkpoint, whatever its norm_topk_prob. Qwen3-MoE
// releases (30B-A3B, 235B-A22B, Coder-30B-A3B) set norm_topk_prob true: their chosen experts'
// weights are renormalised to sum 1, which TensorRT-LLM calls RENORMALIZE. An engine built from the
// checkpoint as converted would weight every expert's output by its softmax share over all experts
// alone (the chosen shares sum to less than 1) and answer differently from transformers. So between the checkpoint
// step and trtllm-build, the TensorRT-LLM checkpoint's config.json gets the mode the source asks for.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GrpstError } from '../../util/errors.js';

/** MoeConfig.ExpertScaleNormalizationMode in tensorrt_llm/layers/moe.py. */
export const NORMALIZATION_NONE = 0;
export const NORMALIZATION_RENORMALIZE = 1;

export interface RoutingFix {
  from: number;
  to: number;
}

/**
 * Sets moe.normalization_mode of `<checkpointDir>/config.json` to what `normTopkProb` means.
 * Returns the change made, or null when the file already says it. Modes other than NONE and
 * RENORMALIZE (sparse mixer, device-limited) are another routing, not a mislabelled one: refused.
 */
export function fixMoeRouting(checkpointDir: string, normTopkProb: boolean): RoutingFix | null {
  const path = join(checkpointDir, 'config.json');
  const config = JSON.parse(readFileSync(path, 'utf8')) as { moe?: { normalization_mode?: unknown } };
  const moe = config.moe;
  if (!moe || typeof moe !== 'object') {
    throw new GrpstError(`${path} has no "moe" section, though the source checkpoint is a Qwen3-MoE model`, {
      hint: 'use a TensorRT-LLM release that converts Qwen3-MoE checkpoints (1.0 or later), or drop --backend trtllm',
    });
  }
  const want = normTopkProb ? NORMALIZATION_RENORMALIZE : NORMALIZATION_NONE;
  // MoeConfig's own default when the key is missing is RENORMALIZE.
  const have = moe.normalization_mode ?? NORMALIZATION_RENORMALIZE;
  if (have === want) return null;
  if (have !== NORMALIZATION_NONE && have !== NORMALIZATION_RENORMALIZE) {
    throw new GrpstError(`${path} routes experts with moe.normalization_mode ${JSON.stringify(have)}, not the softmax top-k routing of Qwen3-MoE`, {
      hint: 'convert the checkpoint with a TensorRT-LLM release whose Qwen converter writes NONE or RENORMALIZE, or drop --backend trtllm',
    });
  }
  moe.normalization_mode = want;
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`);
  return { from: have as number, to: want };
}

/** The build log's and the reporter's line for a change fixMoeRouting made. */
export function routingFixNote(fix: RoutingFix, normTopkProb: boolean): string {
  const name = (mode: number) => (mode === NORMALIZATION_RENORMALIZE ? 'RENORMALIZE' : 'NONE');
  return `set moe.normalization_mode ${name(fix.from)} -> ${name(fix.to)} in the TensorRT-LLM checkpoint: the source's norm_topk_prob is ${normTopkProb}`;
}

/** Applies the fix, writing its note to the build log; returns the note (null when nothing changed). */
export function applyMoeRouting(checkpointDir: string, normTopkProb: boolean, log: string): string | null {
  const fix = fixMoeRouting(checkpointDir, normTopkProb);
  if (!fix) return null;
  const note = routingFixNote(fix, normTopkProb);
  appendFileSync(log, `# grpst: ${note}\n`);
  return note;
}

/** What a dry run says of the fix (the converted checkpoint does not exist yet). */
export function routingPlanNote(normTopkProb: boolean): string {
  return `before trtllm-build, grpst sets moe.normalization_mode in the TensorRT-LLM checkpoint's config.json to ${normTopkProb ? 'RENORMALIZE (norm_topk_prob true)' : 'NONE (norm_topk_prob false)'}`;
}
