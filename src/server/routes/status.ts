// GET /health, /ping, /version, /metrics, /v1/models.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promptTokenLimit } from '../openai/sampling.js';
import { sendJson, sendText } from '../http.js';
import type { RequestContext } from '../router.js';
import type { ServedAdapter } from '../lora-adapters.js';
import { runtimeLoraUpdating } from './lora.js';

/** package.json sits three folders up from this file, in src/ and in dist/ alike. */
const version = (() => {
  try {
    return (JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/** GET /version (vLLM's): grpst's own version. */
export async function serverVersion(rc: RequestContext): Promise<void> {
  sendJson(rc.res, 200, { version });
}

export async function health(rc: RequestContext): Promise<void> {
  const s = rc.server;
  if (s.state === 'ready') return sendJson(rc.res, 200, { status: 'ok', model: s.options.modelId });
  const body: Record<string, unknown> = { status: s.state };
  if (s.state === 'failed') body.error = s.loadError;
  sendJson(rc.res, 503, body, { 'retry-after': '2' });
}

/**
 * Liveness: 200 whenever the process answers HTTP, loading and draining included (/health is
 * readiness: 503 until the model serves). A liveness probe on /health would restart a server
 * still loading a large model.
 */
export async function ping(rc: RequestContext): Promise<void> {
  sendJson(rc.res, 200, { status: rc.server.state });
}

export async function metrics(rc: RequestContext): Promise<void> {
  const s = rc.server;
  const text = s.metrics.render({
    modelName: s.options.modelId,
    ready: s.state === 'ready',
    running: s.admission.running,
    waiting: s.admission.waiting,
    engine: s.engine?.stats(),
    // (a step may mix as many adapters as it holds sequences: vLLM's max_loras)
    lora: s.loras.size > 0 || runtimeLoraUpdating(s.options.allowRuntimeLoraUpdating)
      ? { maxLora: s.engine?.info.maxBatchSize ?? 0, ...s.loras.inFlight() }
      : undefined,
  });
  sendText(rc.res, 200, text, 'text/plain; version=0.0.4; charset=utf-8');
}

const started = Math.floor(Date.now() / 1000);

function modelObject(rc: RequestContext, id: string): Record<string, unknown> {
  const s = rc.server;
  const m: Record<string, unknown> = {
    id,
    object: 'model',
    created: started,
    owned_by: 'grpst',
    // Anthropic's SDKs read these fields of a model (the OpenAI ones ignore them).
    type: 'model',
    display_name: id,
    created_at: new Date(started * 1000).toISOString(),
  };
  if (s.engine) {
    const info = s.limits;
    m.max_model_len = info.maxSeqLen;
    // The engine's prompt limit, when under max_model_len (as TensorRT-LLM engines hold it): a
    // client sizing prompts by max_model_len alone (lm-evaluation-harness's max_length) must stay under it.
    if (info.maxInputLen < info.maxSeqLen) m.max_input_len = info.maxInputLen;
  }
  // Anthropic's ModelInfo: the longest prompt taken and the largest max_tokens accepted, each the
  // bound /v1/messages enforces (a prompt of one token leaves the rest of the context to answer).
  // Null while no engine is loaded, as Anthropic's SDKs allow for a limit not known.
  m.max_input_tokens = s.engine ? promptTokenLimit(s.limits) : null;
  m.max_tokens = s.engine ? s.limits.maxSeqLen - 1 : null;
  return m;
}

/** A LoRA adapter's entry, as vLLM lists one: its folder as root, the model it adapts as parent. */
function adapterObject(rc: RequestContext, adapter: ServedAdapter): Record<string, unknown> {
  return { ...modelObject(rc, adapter.name), created: adapter.created, root: adapter.loaded.path, parent: adapter.parent };
}

export async function models(rc: RequestContext): Promise<void> {
  // Each served name is listed, as vLLM lists each of its --served-model-name; the first is the one
  // answers report. The LoRA adapters follow, each under its own name.
  const data = [...rc.server.servedNames.map((id) => modelObject(rc, id)), ...rc.server.loras.list().map((a) => adapterObject(rc, a))];
  // One list both SDKs page through: OpenAI's object/data, Anthropic's has_more/first_id/last_id.
  sendJson(rc.res, 200, { object: 'list', data, has_more: false, first_id: data[0]!.id, last_id: data[data.length - 1]!.id });
}

/** GET /v1/models/{model} (the SDKs' models.retrieve): the served model under the name asked for, or 404 naming it. */
export async function model(rc: RequestContext): Promise<void> {
  rc.server.checkModel(rc.param);
  const served = rc.server.servedName(rc.param ?? '');
  const adapter = served === undefined && rc.param ? rc.server.loras.get(rc.param) : undefined;
  sendJson(rc.res, 200, adapter ? adapterObject(rc, adapter) : modelObject(rc, served ?? rc.server.options.modelId));
}
