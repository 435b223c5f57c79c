// `--model_dir Qwen/Qwen3-8B` as vLLM takes `vllm serve Qwen/Qwen3-8B`: a folder that exists is
// used as it is; otherwise text shaped like a Hub id names a model, found in the Hugging Face cache
// or pulled into it first. Anything else is left for the caller's own "no such folder" error.
import { resolve } from 'node:path';
import type { Reporter } from '../build/progress.js';
import { ExitCode, GrpstError } from '../util/errors.js';
import { findCachedSnapshot } from './hub-cache.js';
import { namesHubModelFrom } from './conf-paths.js';
import { hubEnv, parseModelRef, type HubEnv } from './hub-env.js';

export interface ModelSourceOptions {
  /** The flag it came from, for messages (--model_dir, --engine_dir). */
  flag: string;
  userAgent: string;
  /** Progress of a download; none: the resolution must not download (a dry run). */
  reporter?: Reporter;
  hub?: HubEnv;
  signal?: AbortSignal;
  /** Where a relative path would have been read from (a conf's deploy folder; default: here). */
  base?: string;
}

/** True when `value` would be looked up on the Hub rather than read as a folder. */
export function namesHubModel(value: string): boolean {
  return namesHubModelFrom(process.cwd(), value);
}

/** The folder `value` means: itself, or the cached (or freshly pulled) snapshot of a Hub model id. */
export async function resolveModelSource(value: string, opts: ModelSourceOptions): Promise<string> {
  return namesHubModel(value) ? cachedOrPulled(value, opts) : value;
}

/** The cached snapshot of a Hub model id, pulled first when it is not there (never with no reporter). */
export async function cachedOrPulled(value: string, opts: ModelSourceOptions): Promise<string> {
  const hub = opts.hub ?? hubEnv();
  const { id, revision } = parseModelRef(value) ?? { id: value, revision: 'main' };
  const cached = findCachedSnapshot(hub.cacheDir, id, revision);
  if (cached) {
    opts.reporter?.info(`${opts.flag} ${value}: the Hugging Face cache's copy, ${cached}`);
    return cached;
  }
  if (!opts.reporter) {
    throw new GrpstError(`${opts.flag} ${value} is neither a folder nor a model in the Hugging Face cache (${hub.cacheDir})`, {
      hint: `download it first: grpst pull ${id}${revision === 'main' ? '' : ` --revision ${revision}`}`,
    });
  }
  if (hub.offline) {
    throw new GrpstError(`${opts.flag} ${value} is neither a folder nor a model in the Hugging Face cache (${hub.cacheDir}), and HF_HUB_OFFLINE is set`, {
      hint: `unset HF_HUB_OFFLINE to download it, or pass the checkpoint's folder`,
    });
  }
  opts.reporter.info(`${opts.flag} ${value}: no such folder; downloading it from ${hub.endpoint} (grpst pull ${value})`);
  try {
    // The HTTP client loads only when something is downloaded (start and serve ask on every run).
    const { pullModel } = await import('./pull.js');
    const pulled = await pullModel(id, { revision, reporter: opts.reporter, userAgent: opts.userAgent, hub, signal: opts.signal });
    return pulled.dir;
  } catch (e) {
    // A mistyped relative path looks like an id too: when the Hub has no such model (or cannot be
    // asked), the message names both readings.
    if (e instanceof GrpstError && (e.message.startsWith('no model ') || e.message.startsWith('could not reach '))) {
      opts.reporter.fail();
      const base = opts.base ?? process.cwd();
      throw new GrpstError(`${opts.flag} ${value} is neither a folder (${resolve(base, value)}) nor a model found on the Hugging Face Hub: ${e.message}`, {
        exitCode: ExitCode.badInput,
        hint: `as a folder, check the path (relative paths start at ${base}); as a model id, ${e.hint ?? 'check the name'}`,
        cause: e,
      });
    }
    throw e;
  }
}
