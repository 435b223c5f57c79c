// LoadOptions.speculative resolved to what the runtime takes. Defaults: suffixes of 2 to 4 tokens
// are looked up (a single repeated token is too weak a match to spend rows on; longer suffixes
// are tried first, as vLLM's prompt lookup does), bent where the caller set only one end.
import { badInput } from '../util/errors.js';
import type { NativeEngineOptions } from './native.js';
import type { SpeculativeOptions } from './types.js';

export function speculativeOptions(spec: SpeculativeOptions | undefined): Pick<NativeEngineOptions, 'speculativeTokens' | 'promptLookupMin' | 'promptLookupMax'> {
  if (!spec) return {};
  if (spec.method !== 'ngram')
    throw badInput(`speculative method ${JSON.stringify(spec.method)} is not served`, 'use method: ngram (prompt lookup; no draft model is loaded)');
  const max = spec.promptLookupMax ?? Math.max(4, spec.promptLookupMin ?? 1);
  const min = spec.promptLookupMin ?? Math.min(2, max);
  return { speculativeTokens: spec.numSpeculativeTokens, promptLookupMin: min, promptLookupMax: max };
}
