// The served model as Ollama's listings describe it: its name (tagged ":latest" when the served
// id has no tag), /api/tags' and /api/ps' entries, and /api/show's details, model_info,
// capabilities, template and parameters.
import type { ServerContext } from '../context.js';
import { ollamaModelNotFound } from './errors.js';
import { ggufArchitecture, modelFacts, parameterCount, parameterSize, type ModelFacts } from './model-facts.js';
import { ollamaName } from './model-name.js';

const startedAt = new Date();

/** The served model under any of its names, in either spelling ("qwen3" or "qwen3:latest"); 404 in Ollama's words otherwise. */
export function checkOllamaModel(s: ServerContext, model: string): void {
  if (!s.servedName(model)) throw ollamaModelNotFound(model, ollamaName(s.options.modelId));
}

function facts(s: ServerContext): ModelFacts {
  return modelFacts(s.served.dir, s.options.modelId, startedAt);
}

function details(s: ServerContext) {
  const f = facts(s);
  const family = ggufArchitecture(f.model);
  return {
    parent_model: '',
    format: f.format,
    family,
    families: [family],
    parameter_size: f.model ? parameterSize(parameterCount(f.model)) : '',
    quantization_level: f.quantization,
  };
}

/** One entry of GET /api/tags. */
export function listEntry(s: ServerContext) {
  const f = facts(s);
  const name = ollamaName(s.options.modelId);
  return { name, model: name, modified_at: f.modifiedAt.toISOString(), size: f.bytes, digest: f.digest, details: details(s) };
}

/** One entry of GET /api/ps: the model is loaded for as long as the server runs. */
export function runningEntry(s: ServerContext) {
  const device = s.engine?.info.device;
  return {
    ...listEntry(s),
    // Never unloaded: Ollama shows a model kept loaded for good (keep_alive -1) with a date this far off.
    expires_at: new Date(startedAt.getTime() + 292 * 365.25 * 86_400_000).toISOString(),
    size_vram: device === 'cuda' ? facts(s).bytes : 0,
    context_length: s.limits.maxSeqLen,
  };
}

/** The context a request may fill: the served limit once loaded (it may be under the model's positions), else the model's. */
function contextLength(s: ServerContext, f: ModelFacts): number | undefined {
  return s.engine ? s.limits.maxSeqLen : f.model?.maxContext;
}

/** POST /api/show's answer. */
export function showBody(s: ServerContext) {
  const f = facts(s);
  return {
    license: '',
    modelfile: modelfile(s),
    parameters: parameters(s),
    template: s.served.template,
    details: details(s),
    model_info: modelInfo(s, f),
    capabilities: ['completion', 'tools', 'thinking'],
    modified_at: f.modifiedAt.toISOString(),
  };
}

/** model_info under GGUF's key names, which Ollama's clients read (context_length above all). */
function modelInfo(s: ServerContext, f: ModelFacts): Record<string, unknown> {
  const m = f.model;
  const arch = ggufArchitecture(m);
  const info: Record<string, unknown> = { 'general.architecture': arch, 'general.basename': s.options.modelId };
  if (m) {
    Object.assign(info, {
      'general.parameter_count': parameterCount(m),
      [`${arch}.block_count`]: m.numLayers,
      [`${arch}.context_length`]: contextLength(s, f),
      [`${arch}.embedding_length`]: m.hiddenSize,
      [`${arch}.feed_forward_length`]: m.intermediateSize,
      [`${arch}.attention.head_count`]: m.numHeads,
      [`${arch}.attention.head_count_kv`]: m.numKvHeads,
      [`${arch}.attention.key_length`]: m.headDim,
      [`${arch}.attention.value_length`]: m.headDim,
      [`${arch}.attention.layer_norm_rms_epsilon`]: m.rmsNormEps,
      [`${arch}.rope.freq_base`]: m.ropeTheta,
    });
    if (m.moe) {
      info[`${arch}.expert_count`] = m.moe.numExperts;
      info[`${arch}.expert_used_count`] = m.moe.numExpertsPerTok;
      info[`${arch}.expert_feed_forward_length`] = m.moe.intermediateSize;
    }
    if (m.ropeType === 'yarn') {
      const scaling = { ...(f.hf?.rope_parameters ?? {}), ...(f.hf?.rope_scaling ?? {}) };
      info[`${arch}.rope.scaling.type`] = 'yarn';
      if (scaling.factor !== undefined) info[`${arch}.rope.scaling.factor`] = scaling.factor;
      if (scaling.original_max_position_embeddings !== undefined) info[`${arch}.rope.scaling.original_context_length`] = scaling.original_max_position_embeddings;
    }
  } else {
    const n = contextLength(s, f);
    if (n !== undefined) info[`${arch}.context_length`] = n;
  }
  const tok = s.tokenizer;
  info['tokenizer.ggml.model'] = 'gpt2';
  info['tokenizer.ggml.pre'] = 'qwen2';
  if (tok.eosTokenId !== undefined) info['tokenizer.ggml.eos_token_id'] = tok.eosTokenId;
  if (tok.padTokenId !== undefined) info['tokenizer.ggml.padding_token_id'] = tok.padTokenId;
  return info;
}

/** The request defaults this server applies, as Ollama lists a Modelfile's PARAMETER lines. */
function parameterLines(s: ServerContext): [string, string][] {
  const d = s.options.sampling;
  const lines: [string, string][] = [];
  const add = (name: string, v: number | undefined) => v !== undefined && lines.push([name, String(v)]);
  add('temperature', d.temperature);
  add('top_k', d.topK);
  add('top_p', d.topP);
  add('min_p', d.minP);
  add('repeat_penalty', d.repetitionPenalty);
  add('presence_penalty', d.presencePenalty);
  add('frequency_penalty', d.frequencyPenalty);
  add('seed', d.seed);
  if (s.engine) lines.push(['num_ctx', String(s.limits.maxSeqLen)]);
  const stops = [...s.stopTokenIds.map((id) => s.tokenizer.idToToken(id)).filter((t): t is string => t !== undefined), ...s.options.stopWords];
  for (const stop of new Set(stops)) lines.push(['stop', JSON.stringify(stop)]);
  return lines;
}

function parameters(s: ServerContext): string {
  return parameterLines(s)
    .map(([name, value]) => `${name.padEnd(30)} ${value}`)
    .join('\n');
}

/** A Modelfile that says where the model comes from: grpst builds engines, it does not read Modelfiles. */
function modelfile(s: ServerContext): string {
  const lines = [
    `# ${ollamaName(s.options.modelId)} is served by grpst: built with \`grpst build\`, served with \`grpst start\`.`,
    '# The chat template is the checkpoint\'s Jinja template (see "template"); the parameters are the server\'s request defaults.',
    `FROM ${s.served.dir ?? s.options.modelId}`,
    ...parameterLines(s).map(([name, value]) => `PARAMETER ${name} ${value}`),
  ];
  return `${lines.join('\n')}\n`;
}
