// A request with a new, large schema must not pause the answers already streaming: the server
// compiles it on its compiler thread (src/structured/compile-thread.ts). The real server, the
// real runtime on a tiny checkpoint, one long stream read chunk by chunk while a second request
// brings a schema that takes a few hundred ms to compile.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnswerSpec } from '../../src/structured/answer-grammar.js';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { longestPause } from '../helpers/loop-stall.js';
import { loadTiny, longStream, post, serve, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;
let compiler: ServerConstraintCompiler;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  // (no build deadline to miss on a loaded machine: the test is about where the time goes)
  compiler = new ServerConstraintCompiler(model.tokenizer, { buildDeadlineMs: 60_000 });
  compiler.warm();
  srv = await serve(model, {}, { constraints: compiler });
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

/** An object of 128 members, each an object of 12 typed, patterned and formatted fields; `tag` makes it new to the cache. */
function bigSchema(tag: string): object {
  const fields = Object.fromEntries(
    Array.from({ length: 12 }, (_, k) => [
      `p${k}`,
      [
        { type: 'string', format: 'date-time' },
        { type: 'string', pattern: '^[a-z]{2,6}-[0-9]{1,3}$' },
        { type: 'integer', minimum: 0, maximum: 100000 },
        { type: 'array', items: { type: 'string', format: 'email' }, maxItems: 4 },
      ][k % 4],
    ]),
  );
  const member = { type: 'object', properties: fields, required: ['p0', 'p1'] };
  return { type: 'object', properties: Object.fromEntries(Array.from({ length: 128 }, (_, i) => [`${tag}_${i}`, member])), required: [`${tag}_0`] };
}

describe('a large new schema while another answer streams', () => {
  // Retried: a gap can also be the scheduler's on a busy machine; one that is the compilation's
  // own comes back on every try.
  it('the stream goes on while the schema compiles, and the schema request is answered', { retry: 2 }, async () => {
    const tag = `s${Math.random().toString(36).slice(2, 8)}`;
    // The premise: compiled on this thread, the same size of schema takes this long.
    const spec: AnswerSpec = { kind: 'json_schema', schema: bigSchema(`${tag}here`) };
    const t0 = performance.now();
    compiler.outputs.compile(spec, false);
    const here = performance.now() - t0;
    expect(here).toBeGreaterThan(80);

    const stream = await longStream(srv.url);
    const asked = performance.now();
    const answer = await post(`${srv.url}/v1/chat/completions`, {
      model: 'qwen3',
      messages: [{ role: 'user', content: 'Fill it in.' }],
      max_tokens: 1,
      response_format: { type: 'json_schema', json_schema: { name: 'big', schema: bigSchema(tag) } },
    });
    const answered = performance.now();
    expect(answer.status, answer.text).toBe(200);
    expect(stream.ended(), 'the stream outlasts the schema request').toBe(false);
    await stream.cut();

    // The longest pause between the stream's chunks while the schema request was out.
    const maxGap = longestPause(stream.arrivals, asked, answered);
    const took = answered - asked;
    expect(maxGap, `longest pause ${maxGap.toFixed(1)} ms while a ${took.toFixed(0)} ms schema request was out (${here.toFixed(0)} ms to compile on the event loop)`).toBeLessThan(here / 3);
  });
});
