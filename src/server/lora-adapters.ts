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
   * taken name and for an adapter the engine refuses (the reason and its fix in the message).
   */
  add(engine: GenerationEngine, module: LoraModule, parent: string): ServedAdapter {
    if (this.byName.has(module.name))
      throw new ApiError(400, `The lora adapter '${module.name}' has already been loaded. Unload it first, or give this one another name.`, { param: 'lora_name', code: 'lora_adapter_exists' });
    if (this.reservedNames().includes(module.name))
      throw new ApiError(400, `'${module.name}' is the served model's own name; give the adapter another one.`, { param: 'lora_name', code: 'lora_adapter_exists' });
    if (!engine.loadLoraAdapter)
      throw new ApiError(400, 'This engine does not serve LoRA adapters. Serve a native engine with tensor_parallel_size 1.', { param: 'lora_path', code: 'lora_not_supported' });
    let loaded: LoadedLora;
    try {
      loaded = engine.loadLoraAdapter(module.path, { maxRank: this.maxRank });
    } catch (e) {
      if (!(e instanceof GrpstError)) throw e;
      throw new ApiError(400, `${e.message}${e.hint ? ` (fix: ${e.hint})` : ''}`, { param: 'lora_path', code: 'invalid_lora_adapter' });
    }
    const adapter: ServedAdapter = { name: module.name, parent: module.baseModelName ?? parent, loaded, created: Math.floor(Date.now() / 1000) };
    this.byName.set(module.name, adapter);
    return adapter;
  }

  /** Serves an adapter again as it was (a failed in-place reload). */
  restore(adapter: ServedAdapter): void {
    this.byName.set(adapter.name, adapter);
  }

  /** Stops serving `name`; false where no adapter has it. */
  remove(name: string): boolean {
    return this.byName.delete(name);
  }
}
