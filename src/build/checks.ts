// Checks that need the checkpoint but no work: run first, so bad input fails in a second and
// before any folder is created.
import fs from 'node:fs';
import { checkGroup } from '../quant/int4.js';
import { pastContext } from '../model/config.js';
import { badInput } from '../util/errors.js';
import { checkInt4Split, checkTpSize } from './shard.js';
import { checkMoeBuild } from './moe-checks.js';
import type { SourceModel } from './native/source.js';
import type { BuildSettings } from './options.js';

/** Everything that can be checked before any work starts, so bad input fails in a second. */
export function checkBuildInputs(s: BuildSettings, src: SourceModel): void {
  // Read only after quantizing (calibration) or after writing (the accuracy report): a typo must
  // fail now, not hours into an 8B build.
  checkDatasetFile('--calib_dataset', s.calib_dataset);
  checkDatasetFile('--eval_dataset', s.eval_dataset);
  const m = src.checkpoint.model;
  // First: a MoE checkpoint's refusals name the experts, not a dimension a dense split would need.
  checkMoeBuild(s, src);
  if (s.backend === 'native') checkTpSize(m, s.tp_size);
  if (s.max_seq_len > m.maxContext)
    throw badInput(
      pastContext('--max_seq_len', s.max_seq_len, m),
      `pass --max_seq_len ${m.maxContext} or less, or build from a checkpoint configured for longer contexts (rope_scaling: YaRN)`,
    );
  if (s.merge_lora !== undefined && s.backend === 'trtllm') {
    throw badInput(
      '--merge_lora is done by the native backend; TensorRT-LLM builds a checkpoint as it is',
      "drop --backend trtllm, or merge the adapter first (PEFT: merge_and_unload(), then save_pretrained) and build that checkpoint",
    );
  }
  if (src.fp8 && s.backend === 'trtllm') {
    throw badInput(
      `${src.checkpoint.dir} is a block-scaled FP8 checkpoint, which grpst reads with its native backend only`,
      'drop --backend trtllm (the native backend dequantizes it and builds any --qformat), or give TensorRT-LLM the unquantized checkpoint',
    );
  }
  if (src.awq) {
    checkInt4Split(m, s.tp_size, src.awq.group);
    if (s.tp_size > 1 && s.kv_cache_dtype !== 'auto') {
      throw badInput(`an AWQ checkpoint's KV cache scales are calibrated on its engine, which runs unsharded only`, `build with --tp_size 1 and --kv_cache_dtype ${s.kv_cache_dtype}, or with tp_size ${s.tp_size} and the default KV cache`);
    }
    if (s.qformat !== 'full_prec' && s.qformat !== 'int4_awq') {
      throw badInput(`${src.checkpoint.dir} is already quantized (AWQ int4); --qformat ${s.qformat} cannot apply`, 'drop --qformat (or pass int4_awq) to convert it as it is, or start from the unquantized checkpoint');
    }
    if (s.quantize_lm_head) {
      throw badInput(`${src.checkpoint.dir} is an AWQ checkpoint: its lm_head is float and it has no float model to calibrate a quantized head on`, 'drop --quantize_lm_head, or build from the unquantized checkpoint with --qformat int4_awq --quantize_lm_head');
    }
    return;
  }
  if (s.qformat === 'int4_awq') {
    // A Qwen3-MoE model's experts read moe_intermediate_size; its dense MLP exists only in dense layers.
    const dense = !m.moe || m.moe.sparseLayers.some((sparse) => !sparse);
    const dims = [m.hiddenSize, m.numHeads * m.headDim, ...(dense ? [m.intermediateSize] : []), ...(m.moe ? [m.moe.intermediateSize] : [])];
    checkGroup('q/k/v_proj and gate/up_proj (hidden_size)', m.hiddenSize, s.awq_block_size, dims);
    checkGroup('o_proj (num_attention_heads * head_dim)', m.numHeads * m.headDim, s.awq_block_size, dims);
    if (dense) checkGroup('down_proj (intermediate_size)', m.intermediateSize, s.awq_block_size, dims);
    if (m.moe) checkGroup("the experts' down_proj (moe_intermediate_size)", m.moe.intermediateSize, s.awq_block_size, dims);
    checkInt4Split(m, s.tp_size, s.awq_block_size);
    if (s.quantize_lm_head) checkGroup('lm_head (hidden_size)', m.hiddenSize, s.awq_block_size);
  }
}

function checkDatasetFile(flag: string, file: string | undefined): void {
  if (file === undefined) return;
  const fix = 'pass a .txt file (passages separated by blank lines) or a .jsonl file ({"text": ...} per line)';
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw badInput(code === 'ENOENT' ? `${flag} ${file} does not exist` : `${flag} ${file} cannot be read (${code})`, fix);
  }
  if (!stat.isFile()) throw badInput(`${flag} ${file} is not a file`, fix);
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    throw badInput(`${flag} ${file} cannot be read (permission denied)`, fix);
  }
}
