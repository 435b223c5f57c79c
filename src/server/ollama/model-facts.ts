// What Ollama's model listings say of a model, read from the folder it was loaded from: an engine
// folder (engine.json: the model's config, quantization and every file's size and sha256) or a
// Hugging Face checkpoint (config.json beside its safetensors files). Read once per folder: the
// files do not change under a running server.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ENGINE_FORMAT, MANIFEST_FILE, readManifest } from '../../build/manifest.js';
import { parseHfConfig, type HfConfig, type ModelConfig } from '../../model/config.js';

export interface ModelFacts {
  /** "grpst-engine", "safetensors", or "grpst" when no folder is known. */
  format: string;
  /** Bytes of the weight files (what the model takes on disk). */
  bytes: number;
  /** sha256, hex: identifies the model's files. */
  digest: string;
  modifiedAt: Date;
  /** Ollama's quantization_level: the weight format (BF16, INT4_AWQ, FP8, ...). */
  quantization: string;
  hf?: HfConfig;
  model?: ModelConfig;
}

const cache = new Map<string, ModelFacts>();

export function modelFacts(dir: string | undefined, fallbackName: string, startedAt: Date): ModelFacts {
  const key = dir ?? `\0${fallbackName}`;
  let facts = cache.get(key);
  if (!facts) {
    facts = dir ? readFacts(dir, fallbackName, startedAt) : unknownFolder(fallbackName, startedAt);
    cache.set(key, facts);
  }
  return facts;
}

function readFacts(dir: string, name: string, startedAt: Date): ModelFacts {
  try {
    return statSync(join(dir, MANIFEST_FILE), { throwIfNoEntry: false }) ? engineFacts(dir) : checkpointFacts(dir);
  } catch {
    // A folder that no longer reads (moved away under the server): the listing still answers.
    return unknownFolder(name, startedAt);
  }
}

function engineFacts(dir: string): ModelFacts {
  const file = join(dir, MANIFEST_FILE);
  const manifest = readManifest(dir);
  const { hf, model } = parseHfConfig(manifest.model_config, file);
  const weights = Object.entries(manifest.files).filter(([f]) => !manifest.tokenizer_files.includes(f));
  const q = manifest.quantization.qformat;
  return {
    format: ENGINE_FORMAT,
    bytes: weights.reduce((sum, [, f]) => sum + f.bytes, 0),
    // engine.json holds the sha256 of every other file: its own digest covers the whole engine.
    digest: sha256(readFileSync(file)),
    modifiedAt: statSync(file).mtime,
    quantization: q === 'full_prec' ? dtypeLevel(manifest.dtype) : q.toUpperCase(),
    hf,
    model,
  };
}

function checkpointFacts(dir: string): ModelFacts {
  const file = join(dir, 'config.json');
  const text = readFileSync(file);
  const { hf, model } = parseHfConfig(JSON.parse(text.toString('utf8')), file);
  const shards = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  const sizes = shards.map((f) => statSync(join(dir, f)).size);
  // Hashing gigabytes of weights on a listing would take seconds: the names and sizes of the
  // files with config.json identify the checkpoint well enough for a listing's digest.
  const digest = sha256(Buffer.concat([text, Buffer.from(shards.map((f, i) => `${f}:${sizes[i]}`).join('\n'))]));
  const method = typeof hf.quantization_config?.quant_method === 'string' ? hf.quantization_config.quant_method : undefined;
  return {
    format: 'safetensors',
    bytes: sizes.reduce((a, b) => a + b, 0),
    digest,
    modifiedAt: statSync(file).mtime,
    quantization: method ? method.toUpperCase() : dtypeLevel(hf.torch_dtype ?? hf.dtype ?? 'bfloat16'),
    hf,
    model,
  };
}

function unknownFolder(name: string, startedAt: Date): ModelFacts {
  return { format: 'grpst', bytes: 0, digest: sha256(Buffer.from(name)), modifiedAt: startedAt, quantization: 'unknown' };
}

function dtypeLevel(dtype: string): string {
  return ({ bfloat16: 'BF16', float16: 'F16', float32: 'F32' } as Record<string, string>)[dtype] ?? dtype.toUpperCase();
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** GGUF's architecture name, which Ollama lists as the family: "qwen3moe" for a Qwen3-MoE model. */
export function ggufArchitecture(m: ModelConfig | undefined): 'qwen3' | 'qwen3moe' {
  return m?.moe ? 'qwen3moe' : 'qwen3';
}

/**
 * Weights of a Qwen3 model from its config (embeddings, attention with q/k norms, MLP, norms); a
 * MoE model counts every expert and the routers (Ollama's "30.5B" for Qwen3-30B-A3B).
 */
export function parameterCount(m: ModelConfig): number {
  const attention = 2 * m.hiddenSize * m.numHeads * m.headDim + 2 * m.hiddenSize * m.numKvHeads * m.headDim + 2 * m.headDim;
  const dense = 3 * m.hiddenSize * m.intermediateSize;
  const sparse = m.moe ? m.moe.numExperts * (3 * m.hiddenSize * m.moe.intermediateSize + m.hiddenSize) : 0;
  let layers = 0;
  for (let i = 0; i < m.numLayers; i++) layers += attention + (m.moe?.sparseLayers[i] ? sparse : dense) + 2 * m.hiddenSize;
  const embeddings = m.vocabSize * m.hiddenSize * (m.tieWordEmbeddings ? 1 : 2);
  return embeddings + layers + m.hiddenSize;
}

/** As Ollama writes a parameter count: "8.2B", "751.63M", "2.10K". */
export function parameterSize(n: number): string {
  if (n >= 1e9) return `${Number((n / 1e9).toFixed(1))}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)}K`;
  return String(n);
}
