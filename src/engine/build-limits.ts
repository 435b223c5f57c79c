// An engine's build limits (engine.json `limits`: `grpst build --max_batch_size`, `--max_seq_len`,
// `--max_num_tokens`) hold wherever it runs. The inference conf may lower them, never raise them:
// a value above the engine's is refused, as TensorRT-LLM's executor refuses a max_batch_size above
// its engine's, so a limit chosen at build time (to bound memory, say) cannot be lifted by a conf
// without a word. `grpst start` and `grpst serve` refuse before anything is deployed or listens
// (src/daemon/load-check.ts); the load refuses the same again, for every other caller.
import type { EngineManifest } from '../build/manifest.js';
import { badInput } from '../util/errors.js';
import type { LoadOptions } from './types.js';

export type BuildLimits = EngineManifest['limits'];
export type LimitKey = 'max_batch_size' | 'max_seq_len' | 'max_num_tokens';

/** Conf key -> the load option it sets. */
const limitOptions: [LimitKey, 'maxBatchSize' | 'maxSeqLen' | 'maxNumTokens'][] = [
  ['max_batch_size', 'maxBatchSize'],
  ['max_seq_len', 'maxSeqLen'],
  ['max_num_tokens', 'maxNumTokens'],
];

export interface LimitExcess {
  key: LimitKey;
  /** What the conf (the load options) asks for. */
  asked: number;
  /** The engine's build limit. */
  built: number;
}

export function limitExcesses(limits: BuildLimits, opts: LoadOptions): LimitExcess[] {
  const out: LimitExcess[] = [];
  for (const [key, option] of limitOptions) {
    const asked = opts[option];
    if (asked !== undefined && asked > limits[key]) out.push({ key, asked, built: limits[key] });
  }
  return out;
}

/** "max_batch_size 64 is above the engine's build limit of 16". */
export function excessText(e: LimitExcess): string {
  return `${e.key} ${e.asked} is above the engine's build limit of ${e.built}`;
}

/**
 * Lower the keys to the engine's limits, or rebuild with the values asked for. `maxContext` (the
 * model's positions) caps the --max_seq_len a rebuild can take.
 */
export function excessFix(excesses: LimitExcess[], where: string, maxContext?: number): string {
  const lower = excesses.map((e) => `${e.key} to at most ${e.built}`).join(', ');
  const rebuild = excesses
    .map((e) => (e.key === 'max_seq_len' && maxContext !== undefined ? { ...e, asked: Math.min(e.asked, maxContext) } : e))
    .filter((e) => e.asked > e.built)
    .map((e) => `--${e.key} ${e.asked}`);
  return `set ${lower} in ${where}${rebuild.length > 0 ? `, or rebuild the engine with ${rebuild.join(' ')} (grpst build)` : ''}`;
}

/** Refuses load options above the engine's build limits, naming each key with both values. */
export function checkBuildLimits(limits: BuildLimits, opts: LoadOptions, engineDir: string, maxContext?: number): void {
  const excesses = limitExcesses(limits, opts);
  if (excesses.length === 0) return;
  throw badInput(`${engineDir}: ${excesses.map(excessText).join('; ')} (engine.json limits)`, excessFix(excesses, 'the inference conf', maxContext));
}
