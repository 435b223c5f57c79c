// The client examples in client/ run as a person runs them (a child process: tsx client/NAME.ts
// HOST:PORT ...) against the real server on the tiny fixture model, and what they print is
// checked. The tool and agent examples run twice: with tool_choice forcing a call, enforced by
// constrained decoding on the real model; and with grps_trtllm's tool_choice auto, where the
// random-weight model would never call a tool by itself, so those prompts get recorded model
// outputs (ScriptedEngine): two calls in one turn, as a real Qwen3 writes them.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/daemon/ports.js';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { repoRoot } from '../helpers/fixtures.js';
import { ScriptedEngine, type ScriptRule } from './scripted-engine.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { loadTiny, post, serve, type TestServer, type TinyModel } from './server-harness.js';
import { oneLine } from '../../client/common.js';

const loader = path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const novel = path.join(repoRoot, 'client', 'data', 'opticks_32k.txt');

/** Runs client/NAME.ts as `tsx client/NAME.ts args...` would. */
async function example(name: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 180_000) {
  const r = await execa(process.execPath, ['--import', loader, path.join(repoRoot, 'client', `${name}.ts`), ...args], {
    cwd: repoRoot,
    reject: false,
    timeout: timeoutMs,
    stdin: 'ignore',
    env: { ...process.env, OPENAI_API_KEY: undefined, GRPST_API_KEY: undefined, ...env },
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const weatherCall = '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Boston, MA", "unit": "fahrenheit"}}\n</tool_call>';
const postcodeCall = '<tool_call>\n{"name": "get_postcode", "arguments": {"location": "Boston, MA"}}\n</tool_call>';
const agentCall = '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Boston, MA", "unit": "fahrenheit"}}\n</tool_call>';
// Qwen3's template wraps each tool message in <tool_response>; a reply only comes back when the
// example's results reached the prompt in that form.
const rules: ScriptRule[] = [
  { whenPromptHas: "What's the weather like in Boston today?", reply: weatherCall },
  { whenPromptHas: "What's the postcode of Boston and what's the weather like in Boston today?", reply: `${postcodeCall}\n${weatherCall}` },
  { whenPromptHas: 'What is the weather in Boston today?', reply: agentCall },
  { whenPromptHas: '<tool_response>\n59\n</tool_response>', reply: 'It is 59 degrees Fahrenheit in Boston today.' },
  { whenPromptHas: '<tool_response>\n02138\n</tool_response>\n<tool_response>\n59\n</tool_response>', reply: "Boston's postcode is 02138 and it is 59 °F there." },
];

let model: TinyModel;
let scripted: ScriptedEngine;
let srv: TestServer;
let host: string;
/** The real model behind constrained decoding; every prompt recorded. */
let recorder: ScriptedEngine;
let forced: RunningServer;
let forcedHost: string;

beforeAll(async () => {
  model = await loadTiny('tiny-a', { maxSeqLen: 4096 });
  scripted = new ScriptedEngine(model.engine, model.tokenizer, rules);
  srv = await serve({ ...model, engine: scripted }, { enableThinking: false });
  host = new URL(srv.url).host;
  recorder = new ScriptedEngine(model.engine, model.tokenizer, []);
  const options = { ...defaultServerOptions, host: '127.0.0.1', port: 0, enableThinking: false };
  forced = await startServer({ engine: recorder, tokenizer: model.tokenizer, template: model.template, constraints: new ServerConstraintCompiler(model.tokenizer) }, options);
  forcedHost = new URL(forced.url).host;
});

afterAll(async () => {
  await forced?.close();
  await srv?.server.close();
  await model?.engine.close();
});

const promptTokens = async (content: string, extra: Record<string, unknown> = {}) =>
  (await post(`${srv.url}/tokenize`, { model: 'qwen3', messages: [{ role: 'user', content }], ...extra })).json.count as number;

describe('openai_cli', () => {
  it('non-streaming: prints the response and the token counts the server reported', async () => {
    const r = await example('openai_cli', [host, 'Hello, who are you?', 'false', '--max_tokens', '6']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout.slice(0, r.stdout.indexOf('\nLatency:')));
    expect(json).toMatchObject({ object: 'chat.completion', model: 'qwen3', choices: [{ message: { role: 'assistant' } }] });
    expect(json.id).toMatch(/^chatcmpl-/);
    const n = await promptTokens('Hello, who are you?');
    expect(json.usage).toMatchObject({ prompt_tokens: n, completion_tokens: 6, total_tokens: n + 6 });
    expect(r.stdout).toMatch(new RegExp(`^Input tokens: ${n}, Output tokens: 6, Total tokens: ${n + 6}$`, 'm'));
    expect(r.stdout).toMatch(/^Speed: [\d.]+ tokens\/s$/m);
  });

  it('streaming: one chunk per line with one id, the role first, usage last', async () => {
    const r = await example('openai_cli', [host, 'Hello', 'true', '--max_tokens', '5']);
    expect(r.code, r.stderr).toBe(0);
    const chunks = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.filter((c) => c.choices[0]?.delta?.content).length).toBeGreaterThan(0);
    expect(chunks.at(-1).usage).toMatchObject({ completion_tokens: 5 });
    expect(r.stdout).toMatch(/^Input tokens: \d+, Output tokens: 5, Total tokens: \d+$/m);
  });

  it('--enable_thinking reaches the template; errors name the fix', async () => {
    const on = await example('openai_cli', [host, 'Hi', 'false', '--max_tokens', '1', '--enable_thinking', 'true']);
    const off = await example('openai_cli', [host, 'Hi', 'false', '--max_tokens', '1', '--enable_thinking', 'false']);
    expect(on.stdout).toMatch(new RegExp(`Input tokens: ${await promptTokens('Hi', { enable_thinking: true })},`));
    expect(off.stdout).toMatch(new RegExp(`Input tokens: ${await promptTokens('Hi', { enable_thinking: false })},`));

    const usage = await example('openai_cli', [host]);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toContain('Usage: npx tsx client/openai_cli.ts <server HOST:PORT> <prompt> <stream true|false>');
    const port = await freePort('127.0.0.1');
    const closed = await example('openai_cli', [`127.0.0.1:${port}`, 'Hi', 'false']);
    expect(closed.code).toBe(1);
    expect(closed.stderr).toMatch(new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*grpst ps`));
  });
});

describe('openai_txt_cli', () => {
  it('the shipped text is a ~32k-token prompt', async () => {
    const n = await promptTokens(fs.readFileSync(novel, 'utf8') + 'What is this text about?');
    expect(n).toBeGreaterThan(28_000);
    expect(n).toBeLessThan(32_768 - 1024);
  });

  it('sends the file plus the question and shows prompt_tokens (stream and not)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-txt-'));
    const text = fs.readFileSync(novel, 'utf8').split('\n\n').slice(0, 12).join('\n\n');
    const file = path.join(dir, 'part.txt');
    fs.writeFileSync(file, text);
    const n = await promptTokens(`${text}\nWho wrote this?`);
    for (const stream of ['false', 'true']) {
      const r = await example('openai_txt_cli', [host, file, '\nWho wrote this?', stream, '--max_tokens', '4']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Text: ${file} (${text.length} characters), question: \nWho wrote this?`);
      expect(r.stdout).toMatch(new RegExp(`^prompt_tokens: ${n}$`, 'm'));
      expect(r.stdout).toMatch(new RegExp(`^Input tokens: ${n}, Output tokens: 4, Total tokens: ${n + 4}$`, 'm'));
    }
    const missing = await example('openai_txt_cli', [host, path.join(dir, 'nope.txt'), 'q', 'false']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('cannot read');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('openai_txt_cli on the whole shipped text', () => {
  // About 30,000 prompt tokens through the client example: the seed's novel test (on tiny-yarn,
  // the tiny checkpoint made for long contexts, whose prefill runs 2.5x faster than tiny-a's here).
  it('answers and shows its ~30k prompt_tokens', async () => {
    const long = await loadTiny('tiny-yarn', { maxSeqLen: 32_768, maxTokensInPagedKvCache: 33 * 1024 });
    const s = await serve(long, { enableThinking: false });
    try {
      const question = '\nWhat does the author prove in the first book?';
      const n = (await post(`${s.url}/tokenize`, { messages: [{ role: 'user', content: fs.readFileSync(novel, 'utf8') + question }] })).json.count;
      const r = await example('openai_txt_cli', [new URL(s.url).host, novel, question, 'true', '--max_tokens', '8'], {}, 1_700_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^prompt_tokens: ${n}$`, 'm'));
      expect(n).toBeGreaterThan(28_000);
    } finally {
      await s.server.close();
      await long.engine.close();
    }
  }, 1_800_000);
});

describe('tool calling forced by tool_choice, on the real model', () => {
  // Seeded, so the constrained calls are the same on every run; their arguments are whatever the
  // random-weight model writes inside the schema.
  const forcedArgs = ['--max_tokens', '200', '--seed', '7'];
  const toolResponses = (prompt: string) => [...prompt.matchAll(/<tool_response>\n(.*?)\n<\/tool_response>/gs)].map((m) => m[1]);

  for (const choice of ['required', 'get_current_weather']) {
    it(`openai_func_call --tool_choice ${choice}: the call is run and its result sent back`, async () => {
      const before = recorder.prompts.length;
      const r = await example('openai_func_call', [forcedHost, '--tool_choice', choice, ...forcedArgs]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Server response: thought: .*call local function\(get_current_weather\) with arguments: location=.*, unit=(celsius|fahrenheit)$/ms);
      expect(r.stdout).toContain('Send the result back to the server with function result(59) ...');
      expect(r.stdout).toMatch(/^Final server response: /m);
      const prompts = recorder.prompts.slice(before);
      expect(prompts).toHaveLength(2);
      expect(prompts[1]).toMatch(/<\|im_start\|>assistant\n<tool_call>\n\{"name": "get_current_weather", "arguments": \{"location":/);
      expect(toolResponses(prompts[1])).toEqual(['59']);
    });
  }

  it('openai_func_call2 --tool_choice required: every call is run, all results go back in one request', async () => {
    const before = recorder.prompts.length;
    const r = await example('openai_func_call2', [forcedHost, '--tool_choice', 'required', ...forcedArgs]);
    expect(r.code, r.stderr).toBe(0);
    const called = /^The model called (\d+) tools?: (.*)$/m.exec(r.stdout);
    expect(called).not.toBeNull();
    const names = called![2].split(', ');
    expect(names).toHaveLength(Number(called![1]));
    for (const name of names) expect(['get_postcode', 'get_current_weather']).toContain(name);
    expect(r.stdout.match(/call local function\(/g)).toHaveLength(names.length);
    const prompts = recorder.prompts.slice(before);
    expect(toolResponses(prompts[1])).toEqual(names.map((n) => (n === 'get_postcode' ? '02138' : '59')));
  });

  it('llamaindex_ai_agent --tool_choice required: the agent runs the tool, then answers', async () => {
    const before = recorder.prompts.length;
    const r = await example('llamaindex_ai_agent', [forcedHost, '--tool_choice', 'required', ...forcedArgs]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Calling tool get_weather with \{"location":/m);
    expect(r.stdout).toContain('Tool get_weather returned 59');
    expect(r.stdout).toMatch(/^Response: /m);
    // Forced on the first step only: the second request may answer, and did.
    const prompts = recorder.prompts.slice(before);
    expect(prompts).toHaveLength(2);
    expect(toolResponses(prompts[1])).toEqual(['59']);
  });
});

describe('tool calling with tool_choice auto, on recorded model outputs', () => {
  it('openai_func_call: runs get_current_weather and sends the result back', async () => {
    const before = scripted.matched.length;
    const r = await example('openai_func_call', [host]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("Query server with question: What's the weather like in Boston today? ...");
    expect(r.stdout).toContain('call local function(get_current_weather) with arguments: location=Boston, MA, unit=fahrenheit');
    expect(r.stdout).toContain('Send the result back to the server with function result(59) ...');
    expect(r.stdout).toContain('Final server response: It is 59 degrees Fahrenheit in Boston today.');
    // The second request carried the assistant's call and the tool result through the template.
    const second = scripted.matched.slice(before)[1].prompt;
    expect(second).toMatch(/<\|im_start\|>assistant\n<tool_call>\n\{"name": "get_current_weather", "arguments": \{"location": ?"Boston, MA", ?"unit": ?"fahrenheit"\}\}\n<\/tool_call><\|im_end\|>\n<\|im_start\|>user\n<tool_response>\n59\n<\/tool_response>/);
  });

  it('openai_func_call2: two calls in one turn, both results in one request', async () => {
    const r = await example('openai_func_call2', [host]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('The model called 2 tools: get_postcode, get_current_weather');
    expect(r.stdout).toContain('call local function(get_postcode) with arguments: location=Boston, MA');
    expect(r.stdout).toContain('call local function(get_current_weather) with arguments: location=Boston, MA, unit=fahrenheit');
    expect(r.stdout).toContain("Final server response: Boston's postcode is 02138 and it is 59 °F there.");
  });

  it('llamaindex_ai_agent: the agent calls the weather tool and answers with its result', async () => {
    const r = await example('llamaindex_ai_agent', [host]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Query: What is the weather in Boston today?');
    expect(r.stdout).toContain('Calling tool get_weather with {"location":"Boston, MA","unit":"fahrenheit"}');
    expect(r.stdout).toContain('Tool get_weather returned 59');
    expect(r.stdout).toContain('Response: It is 59 degrees Fahrenheit in Boston today.');
  });

  it('a model that answers without a call: the example says so and exits 1', async () => {
    // tool_choice none: the tools stay in the prompt, but no call is parsed out of the answer.
    const r = await example('openai_func_call', [host, '--tool_choice', 'none', '--max_tokens', '4']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('The model answered without calling get_current_weather');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1); // the answer quoted, not spilled over lines
    expect(oneLine(`a\n\n  b ${'x'.repeat(400)}`)).toBe(`a b ${'x'.repeat(296)}... (104 more characters)`);
  });
});
