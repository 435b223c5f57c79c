// Pure pieces of the server: request -> engine settings, admission, auth, and the OpenAI shapes.
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/server/admission.js';
import { ApiKeyCheck } from '../../src/server/auth.js';
import { ApiError } from '../../src/server/errors.js';
import type { ChoiceUpdate } from '../../src/server/generate.js';
import { ServerMetrics } from '../../src/server/metrics.js';
import { ChatChunker } from '../../src/server/openai/chat-mapping.js';
import { planTools } from '../../src/server/openai/constraints.js';
import { CompletionLogprobsBuilder } from '../../src/server/openai/logprobs.js';
import { choiceSampling, samplingFor, seedToU32, stopStrings, tokenBudget } from '../../src/server/openai/sampling.js';
import { chatRequestSchema } from '../../src/server/openai/schema-chat.js';
import { defaultServerOptions } from '../../src/server/options.js';

const status = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e instanceof ApiError ? { status: e.status, param: e.param, code: e.code, message: e.message } : { error: String(e) };
  }
  return null;
};

describe('request -> engine settings', () => {
  it('request values win over conf defaults, which win over OpenAI defaults', () => {
    const opts = { ...defaultServerOptions, sampling: { temperature: 0.6, topP: 0.95, topK: 20 } };
    const s = samplingFor({ temperature: 0.2, top_k: -1 }, opts);
    expect(s).toMatchObject({ temperature: 0.2, topP: 0.95, topK: 0, minP: 0, repetitionPenalty: 1 });
    expect(s.seed).toBeUndefined();
    expect(samplingFor({ top_p: 0, temperature: 1 }, opts)).toMatchObject({ temperature: 0, topP: 1 });
  });

  it('seeds map onto 32 bits and each choice gets its own', () => {
    expect(seedToU32(-1)).toBe(2 ** 32 - 1);
    expect(seedToU32(2 ** 40 + 5)).toBe(5);
    const base = samplingFor({ seed: 7 }, defaultServerOptions);
    expect([0, 1, 2].map((i) => choiceSampling(base, i).seed)).toEqual([7, 8, 9]);
  });

  it('stop strings merge with the conf stop_words', () => {
    expect(stopStrings({ stop: 'END' }, { ...defaultServerOptions, stopWords: ['END', '###'] })).toEqual(['END', '###']);
    expect(stopStrings({ stop: ['', 'a'] }, defaultServerOptions)).toEqual(['a']);
  });

  it('context length: the budget fills what is left, an overflow names both numbers', () => {
    const ctx = { maxSeqLen: 4096, maxInputLen: 4096 };
    expect(tokenBudget(undefined, 100, ctx, 'messages')).toBe(3996);
    expect(tokenBudget(10, 100, ctx, 'messages')).toBe(10);
    const err = status(() => tokenBudget(4000, 100, ctx, 'messages'));
    expect(err).toMatchObject({ status: 400, code: 'context_length_exceeded', param: 'messages' });
    expect(err?.message).toMatch(/4096/);
    expect(err?.message).toMatch(/4100/);
    expect(status(() => tokenBudget(undefined, 4096, ctx, 'messages'))).toMatchObject({ code: 'context_length_exceeded' });
  });

  it("an engine's max_input_len refuses longer prompts even where the context has room", () => {
    const engine = { maxSeqLen: 256, maxInputLen: 16 };
    expect(tokenBudget(4, 16, engine, 'prompt')).toBe(4);
    const err = status(() => tokenBudget(4, 17, engine, 'prompt'));
    expect(err).toMatchObject({ status: 400, code: 'context_length_exceeded', param: 'prompt' });
    expect(err?.message).toMatch(/maximum input length is 16 tokens .*your prompt has 17 tokens.*--max_input_len/);
    // OpenAI's sentence for an overflow, which clients that see only the message go by.
    expect(err?.message).toContain('Input tokens exceed the configured limit');
  });
});

describe('tools and response_format', () => {
  const tools = chatRequestSchema.shape.tools.parse([
    { type: 'function', function: { name: 'get_current_weather', parameters: { type: 'object' } } },
    { type: 'function', function: { name: 'get_postcode' } },
  ])!;

  it('auto and none: listed in the prompt; parsed only for auto', () => {
    expect(planTools(tools, undefined, undefined, undefined)).toMatchObject({ parseCalls: true });
    expect(planTools(tools, 'none', undefined, undefined)).toMatchObject({ parseCalls: false, tools });
    expect(planTools(undefined, undefined, undefined, undefined)).toMatchObject({ parseCalls: false, tools: undefined });
  });

  it('a named function must be among the tools; required needs tools', () => {
    expect(status(() => planTools(tools, { type: 'function', function: { name: 'nope' } }, undefined, undefined))).toMatchObject({ status: 400, param: 'tool_choice' });
    expect(status(() => planTools(undefined, 'required', undefined, undefined))).toMatchObject({ status: 400, param: 'tool_choice' });
  });

  it('forced choices and JSON formats go to the compiler; without one, JSON formats are refused', async () => {
    const seen: unknown[] = [];
    const compiler = { compile: (r: unknown) => (seen.push(r), 'handle') };
    const named = planTools(tools, { type: 'function', function: { name: 'get_postcode' } }, undefined, compiler);
    // Compiled only when asked, with where the answer starts (the rendered prompt decides it).
    expect(seen).toEqual([]);
    expect(named.constrained).toBe(true);
    expect(await named.constrain('open')).toBe('handle');
    expect(seen[0]).toMatchObject({ thinking: 'open', toolCalls: { only: 'get_postcode' } });
    expect(status(() => planTools(undefined, undefined, { type: 'json_object' }, undefined))).toMatchObject({ status: 400, param: 'response_format' });
    const text = planTools(undefined, undefined, { type: 'text' }, undefined);
    expect([text.constrained, await text.constrain(true)]).toEqual([false, undefined]);
  });

  it('auto beside a JSON format: the compiler gets both, the turn may be calls or the format; a guided choice keeps the whole output', async () => {
    const seen: any[] = [];
    const compiler = { compile: (r: unknown) => (seen.push(r), 'handle') };
    const person = { type: 'json_schema' as const, json_schema: { name: 'p', schema: { type: 'object' } } };
    const both = planTools(tools, undefined, person, compiler);
    expect(both).toMatchObject({ parseCalls: true, constrained: true });
    expect(await both.constrain(false)).toBe('handle');
    const single = planTools(tools, 'auto', { type: 'json_object' }, compiler, false);
    expect(single).toMatchObject({ singleToolCall: true });
    await single.constrain(false);
    expect(seen[0]).toMatchObject({ responseFormat: person, toolCalls: { tools, orFormat: true } });
    expect(seen[1]).toMatchObject({ responseFormat: { type: 'json_object' }, toolCalls: { orFormat: true, parallel: false } });
    await planTools(tools, 'auto', { type: 'choice', choices: ['yes', 'no'] }, compiler).constrain(false);
    await planTools(tools, 'none', person, compiler).constrain(false);
    expect(seen.slice(2).map((r) => r.toolCalls)).toEqual([undefined, undefined]);
  });
});

describe('admission', () => {
  it('runs up to the limit, queues in order, then answers 429', async () => {
    const a = new Admission(1, 1);
    const r1 = await a.acquire();
    const order: string[] = [];
    const p2 = a.acquire().then((r) => (order.push('second'), r));
    await expect(a.acquire()).rejects.toMatchObject({ status: 429, code: 'queue_full' });
    expect([a.running, a.waiting]).toEqual([1, 1]);
    r1();
    const r2 = await p2;
    expect(order).toEqual(['second']);
    r2();
    r2();
    expect([a.running, a.waiting]).toEqual([0, 0]);
  });

  it('queues by priority (lower first), in arrival order within a priority', async () => {
    const a = new Admission(1, 8);
    const r1 = await a.acquire();
    const order: string[] = [];
    const queued = ([['b', 0], ['c', 5], ['d', -3], ['e', 0], ['f', -3]] as const).map(([name, priority]) =>
      a.acquire(undefined, priority).then((release) => {
        order.push(name);
        release();
      }),
    );
    r1();
    await Promise.all(queued);
    expect(order).toEqual(['d', 'f', 'b', 'e', 'c']);
    expect([a.running, a.waiting]).toEqual([0, 0]);
  });

  it('a client that leaves while queued frees its place', async () => {
    const a = new Admission(1, 4);
    const r1 = await a.acquire();
    const ac = new AbortController();
    const waiting = a.acquire(ac.signal);
    expect(a.waiting).toBe(1);
    ac.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    expect(a.waiting).toBe(0);
    r1();
    expect(a.running).toBe(0);
  });
});

describe('API key', () => {
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  const check = new ApiKeyCheck('s3cret-key');
  it('accepts the key as Bearer or x-api-key, refuses others with 401', () => {
    expect(status(() => check.verify(req({ authorization: 'Bearer s3cret-key' })))).toBeNull();
    expect(status(() => check.verify(req({ 'x-api-key': 's3cret-key' })))).toBeNull();
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer s3cret-ke' }, { authorization: 'Bearer s3cret-key2' }, { authorization: 'Basic abc' }];
    for (const h of attempts) {
      const err = status(() => check.verify(req(h)));
      expect(err).toMatchObject({ status: 401, code: 'invalid_api_key' });
      expect(err?.message).not.toContain('s3cret');
    }
  });
});

describe('OpenAI shapes', () => {
  const meta = { id: 'chatcmpl-x', created: 1, model: 'qwen3', system_fingerprint: 'fp' };
  // Token 4 is a lone continuation byte: its text is U+FFFD, as OpenAI shows partial UTF-8.
  const tok = { tokenBytes: (id: number) => (id === 4 ? new Uint8Array([0xbf]) : new TextEncoder().encode(['Hel', 'lo', ' wor', 'ld'][id])) };
  const update = (index: number, extra: Partial<ChoiceUpdate>): ChoiceUpdate => ({ index, content: '', reasoning: '', toolCalls: [], logprobs: [], completionTokens: 1, ...extra });

  it('stream chunks: tool calls name first, then arguments, indexed per choice', () => {
    const chunker = new ChatChunker(meta, { reasoningField: false, tok }, false);
    const call = { name: 'f', arguments: '{"a":1}' };
    const deltas = [...chunker.updateChunks(update(0, { toolCalls: [call, call] })), ...chunker.updateChunks(update(1, { toolCalls: [call], finishReason: 'tool_calls' }))]
      .map((c) => (c.choices as { index: number; delta: { tool_calls?: { index: number; id?: string; function: { name?: string; arguments: string } }[] }; finish_reason: string | null }[])[0]);
    expect(deltas.map((d) => [d.index, d.delta.tool_calls?.[0].index, d.delta.tool_calls?.[0].function.name ?? null, d.delta.tool_calls?.[0].function.arguments, d.finish_reason])).toEqual([
      [0, 0, 'f', '', null],
      [0, 0, null, '{"a":1}', null],
      [0, 1, 'f', '', null],
      [0, 1, null, '{"a":1}', null],
      [1, 0, 'f', '', null],
      [1, 0, null, '{"a":1}', null],
      [1, undefined, null, undefined, 'tool_calls'],
    ]);
    expect(deltas[0].delta.tool_calls?.[0].id).toMatch(/^call_[0-9a-f]{24}$/);
  });

  it('include_usage puts usage: null on every chunk', () => {
    const chunker = new ChatChunker(meta, { reasoningField: true, tok }, true);
    expect(chunker.roleChunk(0)).toMatchObject({ object: 'chat.completion.chunk', usage: null, choices: [{ delta: { role: 'assistant', content: '' } }] });
    expect(chunker.updateChunks(update(0, { reasoning: 'r' }))[0]).toMatchObject({ choices: [{ delta: { reasoning_content: 'r' } }] });
  });

  it('completions logprobs: prompt position 0 is null, the chosen token is always in the dict, offsets add up', () => {
    const b = new CompletionLogprobsBuilder(tok, 1);
    b.addPrompt([0, 1], [null, { logprob: -1, rank: 2, top: [{ token: 3, logprob: -0.5 }] }]);
    b.addGenerated([{ id: 2, logprob: -0.25, top: [{ token: 2, logprob: -0.25 }] }, { id: 4, logprob: -Infinity, top: [] }]);
    expect(b.value).toEqual({
      tokens: ['Hel', 'lo', ' wor', '\ufffd'],
      token_logprobs: [null, -1, -0.25, -9999],
      top_logprobs: [null, { ld: -0.5, lo: -1 }, { ' wor': -0.25 }, { '\ufffd': -9999 }],
      text_offset: [0, 3, 5, 9],
    });
  });

  it('completions text_offset counts characters, as Python does: a letter outside the BMP is one', () => {
    const astral = { tokenBytes: (id: number) => new TextEncoder().encode(['𝐣', '𝐣', ' hi'][id]) };
    const b = new CompletionLogprobsBuilder(astral, 0);
    b.addGenerated([0, 1, 2].map((id) => ({ id, logprob: -1, top: [] })));
    expect(b.value.text_offset).toEqual([0, 1, 2]);
    const text = b.value.tokens.join('');
    expect(Array.from(text).slice(b.value.text_offset[2]).join('')).toBe(' hi');
  });

  it('metrics render as Prometheus text', () => {
    const m = new ServerMetrics();
    m.requests.inc({ route: '/v1/completions', status: '200' });
    m.ttft.observe(0.003);
    const text = m.render({ modelName: 'qwen3', ready: true, running: 2, waiting: 1 });
    expect(text).toContain('grpst_requests_total{route="/v1/completions",status="200"} 1');
    expect(text).toContain('grpst_time_to_first_token_seconds_bucket{le="0.0025"} 0');
    expect(text).toContain('grpst_time_to_first_token_seconds_bucket{le="0.005"} 1');
    expect(text).toMatch(/grpst_requests_waiting 1\n/);
    expect(text).not.toContain('grpst_kv_blocks_used');
    expect(text).toContain('# TYPE grpst_model_info gauge\ngrpst_model_info{model_name="qwen3"} 1\n');
  });

  it("vLLM's names: tool calls count as stop and cancelled requests as abort; histograms keep their buckets under the labels", () => {
    const m = new ServerMetrics();
    for (const reason of ['stop', 'tool_calls', 'tool_calls', 'cancelled', 'length']) m.finished.inc({ reason });
    m.ttft.observe(0.003);
    const text = m.render({ modelName: 'qwen3', ready: true, running: 2, waiting: 1 });
    const base = 'model_name="qwen3",engine="0"';
    expect(text).toContain(`vllm:request_success_total{${base},finished_reason="stop"} 3`);
    expect(text).toContain(`vllm:request_success_total{${base},finished_reason="abort"} 1`);
    expect(text).toContain(`vllm:request_success_total{${base},finished_reason="length"} 1`);
    expect(text).toContain(`vllm:time_to_first_token_seconds_bucket{${base},le="0.005"} 1`);
    expect(text).toContain(`vllm:time_to_first_token_seconds_count{${base}} 1`);
    // Before the engine loads, the server's own admitted and queued requests.
    expect(text).toContain(`vllm:num_requests_running{${base}} 2`);
    expect(text).toContain(`vllm:num_requests_waiting{${base}} 1`);
  });
});
