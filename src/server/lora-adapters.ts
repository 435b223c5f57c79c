// The LoRA adapters a server offers under their own model names (vLLM's --lora-modules and its
// runtime /v1/load_lora_adapter): a request whose "model" names one runs the base engine with that
// adapter. Unloading drops the name at once; requests already running keep their adapter to the end
// (the runtime holds it while any sequence uses it).
import type { GenerationEngine, LoadedLora, SubmitRequest } from '../engine/types.js';
import { GrpstError } from '../util/errors.js';
import { ApiError } from './errors.js';
import type { LoraModule } from './options.js';

export interface ServedAdapter {
  name: string;
  /** The name /v1/models gives as its parent. */
  parent: string;
  loaded: LoadedLora;
  /** Unix seconds it was loaded. */
  created: number;
}

/** Requests of one adapter: waiting (submitted, no token yet) and running (generating). */
export interface LoraActivity {
  waiting: number;
  running: number;
}

/**
 * The engine as one adapter's requests see it: every submit carries the adapter, and `activity`
 * counts the request as waiting until its first event, then running until its stream ends
 * (vllm:lora_requests_info).
 */
function engineWithLora(engine: GenerationEngine, handle: unknown, activity: LoraActivity): GenerationEngine {
  return {
    get info() {
      return engine.info;
    },
    submit: (req: SubmitRequest) => counted(engine.submit({ ...req, lora: handle }), activity),
    allowedTokensConstraint: engine.allowedTokensConstraint ? (ids) => engine.allowedTokensConstraint!(ids) : undefined,
    stats: () => engine.stats(),
    close: () => engine.close(),
  };
}

function counted<T>(events: AsyncIterable<T>, activity: LoraActivity): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const inner = events[Symbol.asyncIterator]();
      let state: 'waiting' | 'running' | 'ended' = 'waiting';
      activity.waiting++;
      const end = () => {
        if (state === 'waiting') activity.waiting--;
        else if (state === 'running') activity.running--;
        state = 'ended';
      };
      return {
        async next() {
          try {
            const r = await inner.next();
            if (r.done) end();
            else if (state === 'waiting') {
              activity.waiting--;
              activity.running++;
              state = 'running';
            }
            return r;
          } catch (e) {
            end();
            throw e;
          }
        },
        async return(value?: unknown) {
          end();
          return inner.return ? inner.return(value) : { done: true, value: value as T };
        },
      };
    },
  };
}

export class LoraAdapters {
  private readonly byName = new Map<string, ServedAdapter>();
  /** Names whose adapter is being read: taken until the load ends, so two loads never race for one. */
  private readonly loading = new Set<string>();
  /** Each adapter name's requests in flight (kept after an unload while its requests finish). */
  private readonly activity = new Map<string, LoraActivity>();

  constructor(
    private readonly reservedNames: () => string[],
    private readonly maxRank?: number,
  ) {}

  get size(): number {
    return this.byName.size;
  }

  get(name: string): ServedAdapter | undefined {
    return this.byName.get(name);
  }

  list(): ServedAdapter[] {
    return [...this.byName.values()];
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /**
   * Reads `module`'s folder for `engine` and serves it under its name. Throws ApiError 400 for a
   * taken name (unless `replace`: the adapter serving it keeps serving until this one has loaded,
   * and stays if it fails) and for an adapter the engine refuses (the reason and its fix).
   */
  async add(engine: GenerationEngine, module: LoraModule, parent: string, opts: { replace?: boolean } = {}): Promise<ServedAdapter> {
    if (this.loading.has(module.name))
      throw new ApiError(400, `The lora adapter '${module.name}' is being loaded by another request. Wait for it, then unload or reload it.`, { param: 'lora_name', code: 'lora_adapter_exists' });
    if (this.byName.has(module.name) && !opts.replace)
      throw new ApiError(400, `The lora adapter '${module.name}' has already been loaded. Unload it first, or give this one another name.`, { param: 'lora_name', code: 'lora_adapter_exists' });
    if (this.reservedNames().includes(module.name))
      throw new ApiError(400, `'${module.name}' is the served model's own name; give the adapter another one.`, { param: 'lora_name', code: 'lora_adapter_exists' });
    if (!engine.loadLoraAdapter)
      throw new ApiError(400, 'This engine does not serve LoRA adapters. Serve a native engine with tensor_parallel_size 1.', { param: 'lora_path', code: 'lora_not_supported' });
    let loaded: LoadedLora;
    this.loading.add(module.name);
    try {
      loaded = await engine.loadLoraAdapter(module.path, { maxRank: this.maxRank });
    } catch (e) {
      if (!(e instanceof GrpstError)) throw e;
      throw new ApiError(400, `${e.message}${e.hint ? ` (fix: ${e.hint})` : ''}`, { param: 'lora_path', code: 'invalid_lora_adapter' });
    } finally {
      this.loading.delete(module.name);
    }
    const adapter: ServedAdapter = { name: module.name, parent: module.baseModelName ?? parent, loaded, created: Math.floor(Date.now() / 1000) };
    this.byName.set(module.name, adapter);
    return adapter;
  }

  /** The engine for one adapter's requests, counting them (see engineWithLora). */
  engineFor(engine: GenerationEngine, adapter: ServedAdapter): GenerationEngine {
    let a = this.activity.get(adapter.name);
    if (!a) this.activity.set(adapter.name, (a = { waiting: 0, running: 0 }));
    return engineWithLora(engine, adapter.loaded.handle, a);
  }

  /** Adapter names with requests waiting, and with requests running, in name order. */
  inFlight(): { waiting: string[]; running: string[] } {
    const names = [...this.activity.keys()].sort();
    return { waiting: names.filter((n) => this.activity.get(n)!.waiting > 0), running: names.filter((n) => this.activity.get(n)!.running > 0) };
  }

  /** Stops serving `name`; false where no adapter has it. */
  remove(name: string): boolean {
    return this.byName.delete(name);
  }
}
