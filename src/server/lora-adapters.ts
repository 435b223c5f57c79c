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

/** The engine as one adapter's requests see it: every submit carries the adapter. */
export function engineWithLora(engine: GenerationEngine, handle: unknown): GenerationEngine {
  return {
    get info() {
      return engine.info;
    },
    submit: (req: SubmitRequest) => engine.submit({ ...req, lora: handle }),
    allowedTokensConstraint: engine.allowedTokensConstraint ? (ids) => engine.allowedTokensConstraint!(ids) : undefined,
    stats: () => engine.stats(),
    close: () => engine.close(),
  };
}

export class LoraAdapters {
  private readonly byName = new Map<string, ServedAdapter>();
  /** Names whose adapter is being read: taken until the load ends, so two loads never race for one. */
  private readonly loading = new Set<string>();

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

  /** Stops serving `name`; false where no adapter has it. */
  remove(name: string): boolean {
    return this.byName.delete(name);
  }
}
