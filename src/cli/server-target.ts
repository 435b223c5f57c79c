// Finds the server a client command talks to (`grpst chat`, `grpst bench`): by name through the
// lifecycle state (host, port and the deployed API key), or by --url; then asks it which model it
// serves, so a wrong address, a missing key or a server still loading is named with its fix.
import { request, type Dispatcher } from 'undici';
import { loadDeployment } from '../config/resolve.js';
import { envVars, grpstHome } from '../config/paths.js';
import { probeHost } from '../daemon/probe.js';
import { pidAlive } from '../daemon/processes.js';
import { requireState } from '../daemon/stop.js';
import type { ServerState } from '../daemon/state.js';
import { badInput, errorText, failed } from '../util/errors.js';
import { summarizeAnswer } from '../util/http-answer.js';

export interface Target {
  name: string;
  baseUrl: string;
  apiKey?: string;
  model: string;
  /** The longest prompt + answer the model takes, where the server lists it (max_model_len). */
  maxModelLen?: number;
  /** The longest prompt alone, where the server lists it (max_input_len: an engine's build limit). */
  maxInputLen?: number;
}

/** `model`: one the server lists (a LoRA adapter, another served name); default its first. */
export async function locate(name: string, apiKeyFlag?: string, model?: string): Promise<Target> {
  const state = requireState(name, grpstHome());
  if (!pidAlive(state.pid, state.procStart)) {
    throw badInput(`the server ${name} is not running (pid ${state.pid} died)`, `start it again, or remove the entry with \`grpst ps --prune\``);
  }
  const baseUrl = `http://${probeHost(state.host)}:${state.httpPort}`;
  const apiKey = apiKeyFlag ?? (process.env[envVars.apiKey] || undefined) ?? deployedApiKey(state);
  return { name, baseUrl, apiKey, ...(await servedModel(baseUrl, apiKey, name, `\`grpst logs ${name}\``, model)) };
}

/** A server given by address (`--url`): a foreground `grpst serve`, or one on another machine. */
export async function locateUrl(url: string, apiKeyFlag?: string, model?: string): Promise<Target> {
  let parsed: URL;
  try {
    // "127.0.0.1:9997" or "localhost:9997/v1" as curl takes them: http is implied.
    parsed = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`);
  } catch {
    throw badInput(`--url ${url} is not a URL`, 'pass the server address, e.g. --url http://127.0.0.1:9997');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw badInput(`--url ${url} is not an http(s) address`, 'pass the server address, e.g. --url http://127.0.0.1:9997');
  // The API's base with or without its /v1 is the same server.
  const baseUrl = `${parsed.origin}${parsed.pathname.replace(/\/+$/, '').replace(/\/v1$/, '')}`;
  const apiKey = apiKeyFlag ?? (process.env[envVars.apiKey] || undefined);
  return { name: baseUrl, baseUrl, apiKey, ...(await servedModel(baseUrl, apiKey, baseUrl, "the server's own log", model)) };
}

/** The key the server was started with, read from its deployed confs as the server read them. */
function deployedApiKey(state: ServerState): string | undefined {
  if (!state.serverConf) return undefined;
  try {
    return loadDeployment({ inferenceConf: state.inferenceConf, serverConf: state.serverConf, deployPath: state.deployPath }).runtime.server.apiKey;
  } catch {
    // A conf changed since the start: the server answers 401 if it wants a key, and we say how to pass one.
    return undefined;
  }
}

export function authHeaders(apiKey?: string): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

async function servedModel(baseUrl: string, apiKey: string | undefined, name: string, logHint: string, wanted?: string): Promise<{ model: string; maxModelLen?: number; maxInputLen?: number }> {
  // A server given by --url is none that `grpst ps` lists, and may be any web server at all.
  const byUrl = name === baseUrl;
  // undici's request, not fetch: fetch refuses the ports browsers block (6000, 6666, ...), and a
  // server may listen on one.
  let res: Dispatcher.ResponseData;
  try {
    res = await request(`${baseUrl}/v1/models`, { headers: authHeaders(apiKey), signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    if (baseUrl.startsWith('https:') && plainHttpAnswer(err)) {
      throw badInput(`the server at ${baseUrl} speaks plain HTTP, not HTTPS (the TLS handshake got an HTTP answer)`, `use ${baseUrl.replace(/^https:/, 'http:')}`);
    }
    throw badInput(`cannot reach the server ${byUrl ? 'at' : `${name} at`} ${baseUrl}: ${errorText(err)}`, byUrl ? 'check that it runs there and listens on that port' : `check it with \`grpst ps\` and \`grpst logs ${name}\``);
  }
  const status = res.statusCode;
  const text = await res.body.text();
  if (status === 401) throw badInput(apiKey ? `the server ${name} refused the API key` : `the server ${name} needs an API key`, `pass --api_key KEY or set ${envVars.apiKey}`);
  if (status === 503) throw badInput(`the server ${name} is still loading its model`, `try again in a moment (${byUrl ? 'its /health answers 200' : '`grpst ps` shows running'} when it is ready)`);
  const answer = summarizeAnswer(res.headers['content-type'], text);
  // Not an API at all (a web server, a proxy's page): the status and what came, not the page.
  const notAnApi = (what: string) =>
    byUrl
      ? badInput(`no OpenAI-compatible API at ${baseUrl}: GET /v1/models answered ${what}`, 'check that --url names an OpenAI-compatible server (grpst serve, vLLM, llama-server) and its port')
      : failed(`the server ${name} does not answer as grpst does: GET ${baseUrl}/v1/models answered ${what}`, `see ${logHint}`);
  if (status !== 200) {
    if (!answer.envelope) throw notAnApi(`${status} (${answer.text})`);
    // An API that has no /v1/models under this path: the path in --url is wrong, not the server.
    if (byUrl && status === 404) {
      throw badInput(`no OpenAI-compatible API at ${baseUrl}: GET /v1/models answered 404 (not found)`, `give --url the server's address alone or with /v1, e.g. --url ${new URL(baseUrl).origin}`);
    }
    throw failed(`GET ${baseUrl}/v1/models answered ${status}: ${answer.text}`, `see ${logHint}`);
  }
  let body: { data?: { id: string; max_model_len?: unknown; max_input_len?: unknown }[] } | null;
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw notAnApi(`200 with ${answer.text}, not JSON`);
  }
  const first = body?.data?.[0];
  if (!first?.id) throw failed(`the server ${name} lists no model at ${baseUrl}/v1/models`, `see ${logHint}`);
  const chosen = wanted === undefined ? first : body!.data!.find((m) => m.id === wanted);
  if (!chosen) throw badInput(`--model ${wanted}: the server ${name} serves ${body!.data!.map((m) => m.id).join(', ')}`, 'pass one of those names (a LoRA adapter of the server is one of them)');
  const count = (v: unknown) => (typeof v === 'number' ? v : undefined);
  return { model: chosen.id, maxModelLen: count(chosen.max_model_len), maxInputLen: count(chosen.max_input_len) };
}

/**
 * A TLS handshake sent to a plain-HTTP server: the server answers with "HTTP/1.1 400", which
 * OpenSSL reads as a record of an unknown version (or, for some servers, one far too long).
 * OpenSSL's own words ("ssl3_get_record:wrong version number") name neither cause nor fix.
 */
function plainHttpAnswer(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') return true;
  return /wrong version number|packet length too long/i.test(String((err as Error | undefined)?.message ?? ''));
}
