// Sampling defaults a checkpoint recommends in its generation_config.json (Qwen3's: temperature
// 0.6, top_p 0.95, top_k 20), applied to requests that leave those fields out, as vLLM does by
// default (--generation-config auto). Without them an OpenAI client's request samples at
// temperature 1 with no top_k/top_p, which Qwen3's model card warns against.
import fs from 'node:fs';
import path from 'node:path';
import type { SamplingParams } from '../engine/types.js';

export interface GenerationDefaults {
  /** The file the values came from; undefined when no folder has one. */
  file?: string;
  sampling: Partial<SamplingParams>;
  /** max_new_tokens: the answer's length when a request sets none (vLLM reads it so too). */
  maxTokens?: number;
  /** Fields present but out of range: left out, one line each for the log. */
  ignored: string[];
}

// generation_config.json key -> SamplingParams key, with the range the server accepts from a request.
const fields: { key: string; param: keyof SamplingParams; valid: (v: number) => boolean; range: string }[] = [
  { key: 'temperature', param: 'temperature', valid: (v) => v >= 0 && v <= 100, range: '0..100' },
  { key: 'top_k', param: 'topK', valid: (v) => Number.isInteger(v) && v >= 0, range: 'an integer >= 0' },
  { key: 'top_p', param: 'topP', valid: (v) => v > 0 && v <= 1, range: '(0, 1]' },
  { key: 'min_p', param: 'minP', valid: (v) => v >= 0 && v <= 1, range: '0..1' },
  { key: 'repetition_penalty', param: 'repetitionPenalty', valid: (v) => v > 0, range: '> 0' },
];

/**
 * The first generation_config.json among dirs (the engine folder, then the tokenizer folder),
 * reduced to the sampling fields the server takes. A file that is not JSON gives no defaults:
 * the server then behaves as without one (the file is optional in a checkpoint).
 */
export function readGenerationDefaults(dirs: string[]): GenerationDefaults {
  for (const dir of dirs) {
    const file = path.join(dir, 'generation_config.json');
    if (!fs.existsSync(file)) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      return { file, sampling: {}, ignored: ['the file is not valid JSON'] };
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { file, sampling: {}, ignored: ['the file is not a JSON object'] };
    const sampling: Partial<SamplingParams> = {};
    const ignored: string[] = [];
    for (const f of fields) {
      const v = (raw as Record<string, unknown>)[f.key];
      if (v === undefined || v === null) continue;
      if (typeof v === 'number' && Number.isFinite(v) && f.valid(v)) (sampling as Record<string, number>)[f.param] = v;
      else ignored.push(`${f.key} ${JSON.stringify(v)} (expected ${f.range})`);
    }
    const m = (raw as Record<string, unknown>).max_new_tokens;
    if (m === undefined || m === null) return { file, sampling, ignored };
    if (typeof m === 'number' && Number.isInteger(m) && m >= 1) return { file, sampling, ignored, maxTokens: m };
    ignored.push(`max_new_tokens ${JSON.stringify(m)} (expected an integer >= 1)`);
    return { file, sampling, ignored };
  }
  return { sampling: {}, ignored: [] };
}

/** "temperature=0.6 top_k=20 top_p=0.95": the applied defaults, in the file's own key names. */
export function describeDefaults(sampling: Partial<SamplingParams>, maxTokens?: number): string {
  const parts = fields.filter((f) => sampling[f.param] !== undefined).map((f) => `${f.key}=${sampling[f.param]}`);
  if (maxTokens !== undefined) parts.push(`max_new_tokens=${maxTokens}`);
  return parts.join(' ');
}
