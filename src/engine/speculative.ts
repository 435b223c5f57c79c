// LoadOptions.speculative resolved to what the runtime takes. Prompt lookup: suffixes of 2 to 4
// tokens are looked up by default (a single repeated token is too weak a match to spend rows on;
// longer suffixes are tried first, as vLLM's prompt lookup does), bent where the caller set only
// one end. A draft model: its folder read as the model's own is (a checkpoint's safetensors or an
// engine folder's table), its weights mapped by the runtime beside the model's.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openCheckpoint } from '../model/checkpoint.js';
import { badInput } from '../util/errors.js';
import { readEngineFolder } from './engine-folder.js';
import type { NativeEngineOptions } from './native.js';
import { checkpointTensorTable } from './tensor-table.js';
import type { SpeculativeOptions } from './types.js';

export function speculativeOptions(
  spec: SpeculativeOptions | undefined,
): Pick<NativeEngineOptions, 'speculativeTokens' | 'promptLookupMin' | 'promptLookupMax' | 'draftModel'> {
  if (!spec) return {};
  if (spec.method === 'draft_model') return { speculativeTokens: spec.numSpeculativeTokens, draftModel: readDraftModel(spec.model) };
  if (spec.method !== 'ngram')
    throw badInput(
      `speculative method ${JSON.stringify((spec as { method: unknown }).method)} is not served`,
      'use method: ngram (prompt lookup) or draft_model (with model: a smaller checkpoint or engine of the same family)',
    );
  const max = spec.promptLookupMax ?? Math.max(4, spec.promptLookupMin ?? 1);
  const min = spec.promptLookupMin ?? Math.min(2, max);
  return { speculativeTokens: spec.numSpeculativeTokens, promptLookupMin: min, promptLookupMax: max };
}

const draftFix = 'set speculative_config.model to a Qwen3 checkpoint folder (config.json + safetensors) or a grpst engine folder of a smaller model of the same family';

function readDraftModel(path: string): NonNullable<NativeEngineOptions['draftModel']> {
  const dir = resolve(path);
  if (!existsSync(dir)) throw badInput(`the draft model ${dir} does not exist`, draftFix);
  if (existsSync(join(dir, 'engine.json'))) {
    const folder = readEngineFolder(dir);
    if (folder.tpSize > 1) throw badInput(`the draft model ${dir} is a tensor-parallel engine of ${folder.tpSize} ranks`, 'rebuild the draft with --tp_size 1');
    if (folder.manifest.source.embedding_only) throw badInput(`the draft model ${dir} has no LM head (an embedding model)`, draftFix);
    return { model: folder.model, tensors: folder.tensors, quantization: folder.quantization };
  }
  if (!existsSync(join(dir, 'config.json'))) throw badInput(`the draft model ${dir} holds neither config.json nor engine.json`, draftFix);
  const ckpt = openCheckpoint(dir);
  if (ckpt.headless) throw badInput(`the draft model ${dir} has no LM head (an embedding model)`, draftFix);
  return { model: ckpt.model, tensors: checkpointTensorTable(ckpt), quantization: 'none' };
}
