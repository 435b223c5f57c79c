// The server against real Python clients, as most of its users reach it: the official `openai`
// package (client/python/compat_openai.py), LlamaIndex's OpenAI-compatible LLM
// (compat_llamaindex.py), LangChain's ChatOpenAI and ChatAnthropic (compat_langchain.py), the official `anthropic`
// package on the Messages API (compat_anthropic.py), the official `ollama` package on Ollama's
// API (compat_ollama.py) and the OpenAI Agents SDK through both its models (compat_agents.py),
// each in a virtual environment built from its pinned requirements file
// (test/helpers/python-venv.ts; the first run installs from PyPI, later runs reuse it). The
// scripts assert the protocol from the client's side and report a JSON summary; this file checks
// that every check ran and passed, that the pinned client versions are the ones that ran, and
// that the server saw the requests the clients say they made.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { repoRoot } from '../helpers/fixtures.js';
import { hostPython, pythonVenv, type PythonVenv } from '../helpers/python-venv.js';
import { loadTiny, type TinyModel } from './server-harness.js';

const clientDir = path.join(repoRoot, 'client', 'python');
const apiKey = 'python-compat-key';

interface CheckResult {
  name: string;
  ok: boolean;
  error?: string;
  [fact: string]: unknown;
}

interface Summary {
  client: string;
  client_version: string;
  ok: boolean;
  checks: CheckResult[];
}

let model: TinyModel;
let server: RunningServer;
const logs: string[] = [];
let openaiVenv: PythonVenv;
let llamaIndexVenv: PythonVenv;
let langChainVenv: PythonVenv;
let anthropicVenv: PythonVenv;
let ollamaVenv: PythonVenv;
let agentsVenv: PythonVenv;

beforeAll(async () => {
  // python3 missing or too old fails the file with what is needed, never a silent skip: these
  // clients are the project's compatibility promise.
  const python = await hostPython();
  // The environments at once: the installs mostly wait on downloads and unpacking.
  [openaiVenv, llamaIndexVenv, langChainVenv, anthropicVenv, ollamaVenv, agentsVenv] = await Promise.all([
    pythonVenv(path.join(clientDir, 'requirements.txt'), python),
    pythonVenv(path.join(clientDir, 'requirements-llamaindex.txt'), python),
    pythonVenv(path.join(clientDir, 'requirements-langchain.txt'), python),
    pythonVenv(path.join(clientDir, 'requirements-anthropic.txt'), python),
    pythonVenv(path.join(clientDir, 'requirements-ollama.txt'), python),
    pythonVenv(path.join(clientDir, 'requirements-agents.txt'), python),
  ]);
  for (const [name, v] of [['openai', openaiVenv], ['llama-index', llamaIndexVenv], ['langchain', langChainVenv], ['anthropic', anthropicVenv], ['ollama', ollamaVenv], ['openai-agents', agentsVenv]] as const)
    console.log(`python-clients: ${name} environment ${v.installSeconds > 0 ? `installed in ${v.installSeconds.toFixed(1)} s` : 'from the cache'} (${path.relative(repoRoot, v.dir)})`);

  model = await loadTiny('tiny-a');
  // Started as `grpst serve` starts it (src/daemon/serve.ts) rather than through the harness's
  // serve(), which plugs in no structured-output compiler: the clients' parse() and forced tool
  // calls rely on it. The API key makes the clients send their bearer token as in production.
  const constraints = new ServerConstraintCompiler(model.tokenizer);
  constraints.warm();
  server = await startServer(
    { engine: model.engine, tokenizer: model.tokenizer, template: model.template, constraints, log: (line) => logs.push(line) },
    { ...defaultServerOptions, host: '127.0.0.1', port: 0, apiKey },
  );
}, 420_000);

afterAll(async () => {
  await server?.close();
  await model?.engine.close();
});

/**
 * Runs one compatibility script against the server (with the API key, unless `keyless` names a
 * server without one, reached as client/README.md shows: no --api_key); its stdout's last line is
 * the summary.
 */
async function runScript(venv: PythonVenv, script: string, keyless?: RunningServer): Promise<{ code: number | undefined; summary: Summary; stderr: string }> {
  const args = keyless ? [keyless.url] : [server.url, '--api_key', apiKey];
  const r = await execa(venv.python, [path.join(clientDir, script), ...args], {
    reject: false,
    timeout: 180_000,
    stdin: 'ignore',
    // Nothing from the caller's environment may point the clients elsewhere; no bytecode beside the scripts.
    env: {
      ...process.env,
      OPENAI_API_KEY: undefined,
      OPENAI_BASE_URL: undefined,
      // LangChain's: a proxy, another shape for its messages' content, traces sent to LangSmith.
      OPENAI_PROXY: undefined,
      LC_OUTPUT_VERSION: undefined,
      LANGSMITH_TRACING: undefined,
      LANGCHAIN_TRACING_V2: undefined,
      // The Agents SDK's model for an agent without one (the errors check relies on its default).
      OPENAI_DEFAULT_MODEL: undefined,
      GRPST_API_KEY: undefined,
      ANTHROPIC_API_KEY: undefined,
      ANTHROPIC_AUTH_TOKEN: undefined,
      ANTHROPIC_BASE_URL: undefined,
      ANTHROPIC_CUSTOM_HEADERS: undefined,
      OLLAMA_HOST: undefined,
      OLLAMA_API_KEY: undefined,
      PYTHONDONTWRITEBYTECODE: '1',
    },
  });
  const stdout = String(r.stdout).trim();
  const stderr = String(r.stderr);
  let summary: Summary;
  try {
    summary = JSON.parse(stdout.split('\n').at(-1) ?? '');
  } catch {
    throw new Error(`${script} printed no JSON summary (exit ${r.exitCode}):\n${stdout}\n${stderr}`);
  }
  return { code: r.exitCode, summary, stderr };
}

/** The version pinned for `pkg` in a requirements file. */
function pinned(file: string, pkg: string): string {
  const m = new RegExp(`^${pkg}==(\\S+)$`, 'm').exec(fs.readFileSync(path.join(clientDir, file), 'utf8'));
  if (!m) throw new Error(`${file} pins no ${pkg}`);
  return m[1];
}

function expectAllPassed(run: Awaited<ReturnType<typeof runScript>>, names: string[]): Map<string, CheckResult> {
  const failed = run.summary.checks.find((c) => !c.ok);
  // The failing check's own message first: it names the request and what the server did wrong.
  expect(failed, failed ? `${failed.name}: ${failed.error}\n${run.stderr}` : '').toBeUndefined();
  expect(run.code, run.stderr).toBe(0);
  expect(run.summary.ok).toBe(true);
  // Every check ran: a check dropped from a script would otherwise pass unnoticed.
  expect(run.summary.checks.map((c) => c.name)).toEqual(names);
  return new Map(run.summary.checks.map((c) => [c.name, c]));
}

/** How many of the server's access-log lines are for one route and status. */
const answered = (lines: string[], route: string, status: number) => lines.filter((l) => l.startsWith(`access: ${route} ${status} `)).length;

describe('Python clients', () => {
  it("the official openai client: chat, streams, structured outputs, tools, completions, errors, request ids, async, responses, vLLM's fields, embeddings", async () => {
    const before = logs.length;
    const run = await runScript(openaiVenv, 'compat_openai.py');
    const checks = expectAllPassed(run, [
      'models', 'chat', 'chat_stream', 'chat_logprobs', 'structured_parse', 'structured_stream', 'tool_calls',
      'tool_call_named_parse', 'tool_call_stream', 'completions_logprobs', 'errors', 'request_id', 'async_streams',
      'responses', 'responses_parse', 'vllm_extras', 'embeddings',
    ]);
    expect(run.summary.client_version).toBe(pinned('requirements.txt', 'openai'));
    expect(checks.get('models')!.models).toEqual(['qwen3']);
    expect(checks.get('errors')!.codes).toEqual(['decimal_above_max_value', 'decimal_above_max_value', 'context_length_exceeded', 'model_not_found', 'unsupported_schema']);
    expect(checks.get('async_streams')!.in_flight_at_first_finish).toBeGreaterThanOrEqual(2);

    // The ids the client read are the ones the server logged for its requests.
    const ids = checks.get('request_id')!;
    const mine = logs.slice(before);
    for (const id of [ids.request_id, ids.client_request_id, ids.stream_request_id] as string[])
      expect(mine.some((l) => l.startsWith('access: POST /v1/chat/completions 200 ') && l.endsWith(` ${id}`)), `no access line for ${id}`).toBe(true);
    // The errors check's refusals: four 400s and an unknown model on chat, an unknown model on /v1/models/{model}.
    expect(answered(mine, 'POST /v1/chat/completions', 400)).toBe(4);
    expect(answered(mine, 'POST /v1/chat/completions', 404)).toBe(1);
    expect(answered(mine, 'GET /v1/models/no-such-model', 404)).toBe(1);
    expect(answered(mine, 'POST /v1/completions', 200)).toBe(3);
  });

  it('the OpenAI Agents SDK through OpenAIResponsesModel and OpenAIChatCompletionsModel: runs, settings, function tools, typed outputs (also after tools under "auto"), streams, cancel, handoffs, conversations, reasoning, errors', async () => {
    const before = logs.length;
    const run = await runScript(agentsVenv, 'compat_agents.py');
    const checks = expectAllPassed(run, [
      'setup', 'run', 'model_settings', 'function_tool', 'structured_output', 'tools_with_output_type', 'stream', 'cancel', 'handoff', 'conversation', 'reasoning', 'errors',
    ]);
    expect(run.summary.client_version).toBe(pinned('requirements-agents.txt', 'openai-agents'));
    for (const api of ['responses', 'chat']) {
      const called = checks.get('tools_with_output_type')![api] as { calls: Record<string, unknown>[] };
      expect(called.calls.length, api).toBeGreaterThanOrEqual(1);
      for (const c of called.calls) expect(c).toMatchObject({ city: expect.any(String), unit: expect.stringMatching(/^(celsius|fahrenheit)$/) });
    }
    expect(checks.get('errors')!.responses).toEqual(['model_not_found', 'model_not_found', 'context_length_exceeded', 'model_not_found', 'unsupported_parameter']);
    expect(checks.get('errors')!.chat).toEqual(['model_not_found', 'model_not_found', 'context_length_exceeded']);

    const mine = logs.slice(before);
    // Each model class went to its own API: the request ids the SDK kept are the server's.
    const ids = checks.get('run')!.request_ids as Record<string, string>;
    for (const [api, route] of [['responses', 'POST /v1/responses'], ['chat', 'POST /v1/chat/completions']])
      expect(mine.some((l) => l.startsWith(`access: ${route} 200 `) && l.endsWith(` ${ids[api]}`)), `no access line for ${api}'s ${ids[api]}`).toBe(true);
    // The cancelled streams: the server saw each client leave (and stopped its generation).
    for (const route of ['POST /v1/responses', 'POST /v1/chat/completions'])
      expect(mine.filter((l) => l.startsWith(`access: ${route} 200 `) && l.endsWith(' (client left)')).length, route).toBe(1);
    // The errors check: unknown models (run, streamed, and the SDK's default name on Responses), a
    // max_tokens past the context on each, a hosted tool on Responses.
    expect(answered(mine, 'POST /v1/responses', 404)).toBe(3);
    expect(answered(mine, 'POST /v1/chat/completions', 404)).toBe(2);
    expect(answered(mine, 'POST /v1/responses', 400)).toBe(2);
    expect(answered(mine, 'POST /v1/chat/completions', 400)).toBe(1);
  });

  it('LlamaIndex OpenAILike (openai 2.x underneath): chat, streams, completions, tool call and result, structured_predict', async () => {
    const run = await runScript(llamaIndexVenv, 'compat_llamaindex.py');
    const checks = expectAllPassed(run, ['setup', 'chat', 'stream_chat', 'complete', 'async_streams', 'tool_call_and_result', 'structured_predict']);
    expect(run.summary.client_version).toBe(pinned('requirements-llamaindex.txt', 'llama-index-llms-openai-like'));
    const calls = checks.get('tool_call_and_result')!.calls as Record<string, unknown>[];
    expect(calls.length).toBeGreaterThanOrEqual(1);
    for (const c of calls) expect(typeof c.city).toBe('string');
    expect(checks.get('structured_predict')!.person).toMatchObject({ name: expect.any(String), age: expect.any(Number), hobbies: expect.any(Array) });
  });

  it("LangChain's ChatOpenAI: invoke, stream, batch, tools and their results, structured output by each method, logprobs, sampling, async, the Responses API, errors; ChatAnthropic's context overflows", async () => {
    const before = logs.length;
    const run = await runScript(langChainVenv, 'compat_langchain.py');
    const checks = expectAllPassed(run, [
      'setup', 'invoke', 'stream', 'batch', 'tool_calls', 'tool_round_trip', 'structured_json_schema', 'structured_function_calling',
      'structured_json_mode', 'logprobs', 'sampling', 'async', 'responses_api', 'errors', 'chat_anthropic',
    ]);
    expect(run.summary.client_version).toBe(pinned('requirements-langchain.txt', 'langchain-openai'));
    // LangChain's exception for each refusal: the openai one, also its own model error; the
    // context overflows as ContextOverflowError, which its agents catch to shorten the conversation.
    expect(checks.get('errors')!.types).toEqual([
      'OpenAIInvalidRequestError', 'OpenAIInvalidRequestError', 'OpenAIContextOverflowError', 'OpenAIContextOverflowError', 'OpenAIModelNotFoundError', 'OpenAIAuthenticationError',
    ]);
    // ChatAnthropic on /v1/messages: a prompt past the context (invoked and streamed) is LangChain's
    // ContextOverflowError by Anthropic's wording; a max_tokens past it is its invalid-request error.
    expect(checks.get('chat_anthropic')!.version).toBe(pinned('requirements-langchain.txt', 'langchain-anthropic'));
    expect(checks.get('chat_anthropic')!.types).toEqual(['AnthropicContextOverflowError', 'AnthropicContextOverflowError', 'AnthropicInvalidRequestError']);
    expect(checks.get('invoke')!.repeat_cache_read).toBeGreaterThan(0);
    const mine = logs.slice(before);
    // use_responses_api: a turn, its stream, a forced tool call and the turn after its result.
    expect(answered(mine, 'POST /v1/chat/completions', 200)).toBeGreaterThanOrEqual(30);
    expect(answered(mine, 'POST /v1/responses', 200)).toBe(4);
    // The errors check: temperature 5 (whole and streamed) and two context overflows, an unknown
    // model, a wrong key.
    expect(answered(mine, 'POST /v1/chat/completions', 400)).toBe(4);
    expect(answered(mine, 'POST /v1/chat/completions', 404)).toBe(1);
    expect(answered(mine, 'POST /v1/chat/completions', 401)).toBe(1);
    expect(answered(mine, 'POST /v1/messages', 200)).toBe(1);
    expect(answered(mine, 'POST /v1/messages', 400)).toBe(3);
  });

  it('the official anthropic client on /v1/messages: create, system, streams, stop_sequences, count_tokens, tool use and results, thinking, errors, context overflows, async', async () => {
    const before = logs.length;
    const run = await runScript(anthropicVenv, 'compat_anthropic.py');
    const checks = expectAllPassed(run, [
      'models', 'create', 'system', 'stream', 'stop_sequences', 'count_tokens', 'tool_use', 'thinking', 'errors', 'context_overflow', 'request_id', 'async_streams',
    ]);
    expect(run.summary.client_version).toBe(pinned('requirements-anthropic.txt', 'anthropic'));
    expect(checks.get('models')!.model).toBe('qwen3');
    expect(checks.get('errors')!.types).toEqual(['not_found_error', 'not_found_error', 'invalid_request_error', 'authentication_error']);
    // Anthropic's wording of an overflow, whole: a BadRequestError that LangChain's ChatAnthropic
    // turns into its ContextOverflowError by it.
    const maxLen = model.engine.info.maxSeqLen;
    expect(checks.get('context_overflow')!.messages).toEqual([
      expect.stringMatching(new RegExp(`^prompt is too long: \\d+ tokens > ${maxLen - 1} maximum$`)),
      expect.stringMatching(new RegExp(`^input length and \`max_tokens\` exceed context limit: \\d+ \\+ ${maxLen} > ${maxLen}, decrease input length or \`max_tokens\` and try again$`)),
    ]);
    expect(checks.get('async_streams')!.in_flight_at_first_finish).toBeGreaterThanOrEqual(2);
    // This server reuses prompt prefixes: a repeated prompt, and a follow-up turn after its first
    // turn, come back with cache_read_input_tokens.
    expect(checks.get('create')!.repeat_cache_read_input_tokens).toBeGreaterThan(0);
    expect(checks.get('tool_use')!.follow_up_cache_read_input_tokens).toBeGreaterThan(0);

    const mine = logs.slice(before);
    const ids = checks.get('request_id')!;
    for (const id of [ids.request_id, ids.client_request_id] as string[])
      expect(mine.some((l) => l.startsWith('access: POST /v1/messages 200 ') && l.endsWith(` ${id}`)), `no access line for ${id}`).toBe(true);
    // Every Anthropic call went to the Messages routes, none to chat.
    expect(answered(mine, 'POST /v1/messages', 200)).toBeGreaterThanOrEqual(20);
    expect(answered(mine, 'POST /v1/messages/count_tokens', 200)).toBe(9);
    expect(mine.filter((l) => l.startsWith('access: POST /v1/chat/completions ')).length).toBe(0);
    // The errors check: an unknown model (created and streamed), an image block, a wrong key; the
    // context_overflow check: a prompt past the context (created and streamed), a max_tokens past
    // it; the request_id check: a wrong key once more.
    expect(answered(mine, 'POST /v1/messages', 404)).toBe(2);
    expect(answered(mine, 'POST /v1/messages', 400)).toBe(4);
    expect(answered(mine, 'POST /v1/messages', 401)).toBe(2);
  });

  it('the anthropic and ollama scripts as client/README.md runs them, without a key against a server without one: every check passes, the wrong-key checks are skipped and said to be', async () => {
    const constraints = new ServerConstraintCompiler(model.tokenizer);
    const open = await startServer({ engine: model.engine, tokenizer: model.tokenizer, template: model.template, constraints }, { ...defaultServerOptions, host: '127.0.0.1', port: 0 });
    try {
      const anthropicRun = await runScript(anthropicVenv, 'compat_anthropic.py', open);
      const checks = expectAllPassed(anthropicRun, [
        'models', 'create', 'system', 'stream', 'stop_sequences', 'count_tokens', 'tool_use', 'thinking', 'errors', 'context_overflow', 'request_id', 'async_streams',
      ]);
      expect(checks.get('errors')!.types).toEqual(['not_found_error', 'not_found_error', 'invalid_request_error']);
      for (const name of ['errors', 'request_id']) expect(checks.get(name)!.skipped, name).toContain('no --api_key given');
      expect(anthropicRun.stderr).toContain('errors: skipped the 401 for a wrong key');
      const ollamaRun = await runScript(ollamaVenv, 'compat_ollama.py', open);
      expect(expectAllPassed(ollamaRun, ['models', 'chat', 'chat_stream', 'generate', 'structured', 'tools', 'thinking', 'errors', 'async_streams']).get('errors')!.skipped).toContain('no --api_key given');
    } finally {
      await open.close();
    }
  });

  it('the official ollama client on Ollama\'s API: list, show, ps, chat, streams, generate, structured outputs, tools, thinking, errors, async', async () => {
    const before = logs.length;
    const run = await runScript(ollamaVenv, 'compat_ollama.py');
    const checks = expectAllPassed(run, ['models', 'chat', 'chat_stream', 'generate', 'structured', 'tools', 'thinking', 'errors', 'async_streams']);
    expect(run.summary.client_version).toBe(pinned('requirements-ollama.txt', 'ollama'));
    expect(checks.get('models')!.model).toBe('qwen3:latest');
    expect(checks.get('async_streams')!.in_flight_at_first_finish).toBeGreaterThanOrEqual(2);
    const mine = logs.slice(before);
    // The errors check: an unknown model (whole and streamed), a bad option, a pull, a wrong key.
    expect(answered(mine, 'POST /api/chat', 404)).toBe(2);
    expect(answered(mine, 'POST /api/chat', 400)).toBe(1);
    expect(answered(mine, 'POST /api/pull', 400)).toBe(1);
    expect(answered(mine, 'GET /api/tags', 401)).toBe(1);
    expect(answered(mine, 'POST /api/chat', 200)).toBeGreaterThanOrEqual(10);
  });
});
