// The server compiles schemas on a thread of its own (StructuredOutputs.compileOffThread,
// compile-thread.ts): the same grammar as compile() gives, the same refusals, one compilation
// for concurrent requests with the same new schema, and an event loop that keeps running while
// a large tool list compiles (the tokens of requests already streaming go out meanwhile).
import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { withWrittenKeyOrder } from '../../src/parse/ordered-json.js';
import { ToolSchemaError, type AnswerSpec } from '../../src/structured/answer-grammar.js';
import { compileWorkerFile } from '../../src/structured/compile-thread.js';
import { SchemaError } from '../../src/structured/schema-errors.js';
import { StructuredOutputs } from '../../src/structured/structured-outputs.js';
import { longestStall } from '../helpers/loop-stall.js';
import { tokenizer } from './structured-sample.js';

const compilers: StructuredOutputs[] = [];
const compiler = () => {
  const c = new StructuredOutputs(tokenizer, { buildDeadlineMs: 60_000 });
  compilers.push(c);
  return c;
};
afterAll(async () => {
  for (const c of compilers) await c.close();
});

/** `n` tools with parameters of every kind a schema compiles to; `tag` makes the list new to a cache. */
function toolList(n: number, tag: string): AnswerSpec {
  const tools = Array.from({ length: n }, (_, i) => ({
    name: `${tag}_${i}`,
    parameters: {
      type: 'object',
      properties: {
        path: { type: 'string' },
        mode: { enum: ['read', 'write', 'append', 'delete'] },
        count: { type: 'integer', minimum: 0, maximum: 1000 },
        opts: { type: 'object', properties: { a: { type: 'boolean' }, b: { type: 'array', items: { type: 'string', format: 'date' } } } },
        when: { type: 'string', format: 'date-time' },
        email: { type: 'string', format: 'email' },
      },
      required: ['path', 'mode'],
    },
  }));
  return { kind: 'tool_calls', tools, parallel: true };
}

const bytes = (s: string) => new TextEncoder().encode(s);

/** What compile() throws for `spec`, or undefined. */
function syncError(c: StructuredOutputs, spec: AnswerSpec): Error | undefined {
  try {
    c.compile(spec, false);
  } catch (err) {
    return err as Error;
  }
  return undefined;
}

describe('schemas compiled on the compiler thread', () => {
  it('runs where the compiled worker is (npm test builds it before the tests)', () => {
    expect(compileWorkerFile()).toMatch(/dist[\\/]structured[\\/]compile-worker\.js$/);
  });

  it('gives the grammar compile() gives: the same automaton, the same outputs accepted', async () => {
    const tools = toolList(3, 'same');
    expect((await compiler().compileOffThread(tools, false)).nodes).toBe(compiler().compile(tools, false).nodes);
    const spec: AnswerSpec = { kind: 'json_schema', schema: (tools.kind === 'tool_calls' && tools.tools[1].parameters) as object };
    const onThread = await compiler().compileOffThread(spec, false);
    const here = compiler().compile(spec, false);
    expect(onThread.nodes).toBe(here.nodes);
    const answer = '{"path": "a", "mode": "read", "count": 7, "email": "x@y.org"}';
    const cases: [string, string][] = [
      [answer, 'complete'],
      [answer.slice(0, -3), 'prefix'],
      [answer.replace('"read"', '"rea"'), 'rejected'],
      [answer.replace('7', '1001'), 'rejected'],
      ['{"path": "", "mode": "write"}', 'complete'],
      ['{"mode": "write", "path": ""}', 'rejected'], // (properties in the schema's order)
    ];
    for (const [text, expected] of cases) {
      expect(onThread.grammar.match(bytes(text)), text).toBe(expected);
      expect(here.grammar.match(bytes(text)), text).toBe(expected);
    }
  });

  it("keeps the client's key order: properties are written in the order the schema lists them", async () => {
    const text = '{"type": "object", "properties": {"b": {"type": "string"}, "1": {"type": "integer"}, "a": {"type": "boolean"}}, "required": ["b", "1", "a"]}';
    const spec: AnswerSpec = { kind: 'json_schema', schema: withWrittenKeyOrder(text, JSON.parse(text)) as object };
    for (const { grammar } of [await compiler().compileOffThread(spec, false), compiler().compile(spec, false)]) {
      expect(grammar.match(bytes('{"b": "x", "1": 2, "a": true}'))).toBe('complete');
      expect(grammar.match(bytes('{"1": 2, "b": "x", "a": true}'))).toBe('rejected');
    }
  });

  it('refuses what compile() refuses, with the same error, and remembers the refusal', async () => {
    const refused: AnswerSpec[] = [
      { kind: 'json_schema', schema: { type: 'string', pattern: '(a)\\1' } },
      { kind: 'json_schema', schema: { type: 'string', pattern: '(x{1,1000}){1,1000}' } },
      { kind: 'tool_calls', tools: [{ name: 'ok', parameters: { type: 'object' } }, { name: 'bad', parameters: { type: 'string', pattern: '(?=x)' } }] },
      { kind: 'regex', pattern: '\\bword' },
    ];
    for (const spec of refused) {
      const c = compiler();
      const expected = syncError(compiler(), spec);
      expect(expected).toBeInstanceOf(SchemaError);
      const got = await c.compileOffThread(spec, false).then(() => undefined, (err: Error) => err);
      expect(got?.constructor).toBe(expected!.constructor);
      expect(got?.message).toBe(expected!.message);
      if (expected instanceof ToolSchemaError) expect((got as ToolSchemaError).tool).toBe('bad');
      // Cached: the second ask is refused without the thread (the same error object).
      const again = await c.compileOffThread(spec, false).then(() => undefined, (err: Error) => err);
      expect(again).toBe(got);
    }
  });

  it('a schema nested past the stack is a RangeError (the server answers it with a 400), and the thread goes on', async () => {
    const c = compiler();
    const depth = 5_000;
    const nested = JSON.parse(`${'{"type":"array","items":'.repeat(depth)}{"type":"string"}${'}'.repeat(depth)}`);
    await expect(c.compileOffThread({ kind: 'json_schema', schema: nested }, false)).rejects.toBeInstanceOf(RangeError);
    expect((await c.compileOffThread({ kind: 'json_object' }, false)).nodes).toBeGreaterThan(0);
  });

  it('requests with the same new schema at once share one compilation', async () => {
    const c = compiler();
    const spec = toolList(5, 'shared');
    const [a, b, d] = await Promise.all([c.compileOffThread(spec, false), c.compileOffThread(structuredClone(spec), false), c.compileOffThread(spec, false)]);
    expect(b.grammar).toBe(a.grammar);
    expect(d.grammar).toBe(a.grammar);
    expect(c.cachedGrammars).toBe(1);
  });

  it('a thread that stops (or is closed) fails the jobs still waiting with a clear error; the next compilation starts a new thread', async () => {
    const c = compiler();
    const waiting = c.compileOffThread(toolList(40, 'closed'), false).then(() => undefined, (err: Error) => err);
    await c.close();
    expect((await waiting)?.message).toMatch(/the server is shutting down/);
    expect((await c.compileOffThread(toolList(2, 'reopened'), false)).nodes).toBeGreaterThan(0);
    // The worker ended from outside (as an out-of-memory end would): the job it held fails, not hangs.
    const cut = c.compileOffThread(toolList(40, 'cut'), false).then(() => undefined, (err: Error) => err);
    await (c as unknown as { thread: { thread: { worker: Worker } } }).thread.thread.worker.terminate();
    expect((await cut)?.message).toMatch(/the grammar compiler's thread stopped \(exit code 1\); send the request again/);
    expect((await c.compileOffThread(toolList(40, 'cut'), false)).nodes).toBeGreaterThan(0);
  });

  // Retried: a stall of the loop is also the scheduler's doing on a busy machine. A stall that is
  // the compilation's own comes back on every try.
  it('keeps the event loop free while a large tool list compiles', { retry: 2 }, async () => {
    const c = compiler();
    await c.compileOffThread({ kind: 'json_object' }, false); // (the thread started, the vocabulary built)
    // The premise: on this thread the same size of list holds the loop for all of its compilation.
    const t0 = performance.now();
    compiler().compile(toolList(200, 'here'), false);
    const here = performance.now() - t0;
    expect(here).toBeGreaterThan(60);
    const { result: compiled, took, maxGap } = await longestStall(() => c.compileOffThread(toolList(200, 'there'), false));
    expect(compiled.nodes).toBeGreaterThan(20_000);
    // What is left on this thread is the native matcher made from the automaton (a few ms).
    expect(maxGap, `longest stall ${maxGap.toFixed(1)} ms of a ${took.toFixed(0)} ms compilation (${here.toFixed(0)} ms on this thread)`).toBeLessThan(here / 4);
  });
});
