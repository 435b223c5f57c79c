// A request with a prompt of a few MB must not pause the answers already streaming: the server
// tokenizes long texts on a thread of their own (src/chat/tokenize-thread.ts), and still counts
// their tokens exactly, on every route that tokenizes a client's text. The real server, the real
// runtime on a tiny checkpoint (1,024 tokens of context, so long texts are refused with their
// counts in the message).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderPrompt } from '../../src/chat/render-prompt.js';
import { OFF_LOOP_CHARS } from '../../src/chat/tokenize-thread.js';
import { longestPause } from '../helpers/loop-stall.js';
import { loadTiny, longStream, post, serve, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  srv = await serve(model, { maxBodyBytes: 16 * 1024 * 1024, enableThinking: false });
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

const passage = 'The quick brown fox jumps over the lazy dog, 12345 times; naïve café — 你好世界 <|im_end|> ';
/** About `chars` characters of text (a random tail: new to every cache). */
const textOf = (chars: number) => passage.repeat(Math.ceil(chars / passage.length)) + Math.random();
const chatIds = (text: string) => renderPrompt(model.template, model.tokenizer, [{ role: 'user', content: text }], { enableThinking: false }).ids;
const errorOf = (r: { json: unknown }) => (r.json as { error: { code: string; message: string } }).error;

describe('long prompts', () => {
  // Retried: a gap can also be the scheduler's (or the collector's) on a busy machine; one that
  // is the tokenizing's own comes back on every try.
  it('a stream goes on while a chat prompt of 2 MB is tokenized, which is refused with its exact token count', { retry: 2 }, async () => {
    const text = textOf(2e6);
    const stream = await longStream(srv.url);
    const asked = performance.now();
    const answer = await post(`${srv.url}/v1/chat/completions`, { model: 'qwen3', messages: [{ role: 'user', content: text }], max_tokens: 1 });
    const answered = performance.now();
    expect(stream.ended(), 'the stream outlasts the long request').toBe(false);
    await stream.cut();

    // The premise, measured once the stream is cut off (so that its garbage is not collected while
    // the stream is measured):
    // tokenized on the event loop, the same prompt takes this long.
    const t0 = performance.now();
    const ids = chatIds(text);
    const here = performance.now() - t0;
    expect(here).toBeGreaterThan(100);
    expect(answer.status, answer.text).toBe(400);
    expect(errorOf(answer).code).toBe('context_length_exceeded');
    expect(errorOf(answer).message).toContain(`(${ids.length} in the prompt,`);

    // The longest pause between the stream's chunks while the long request was out.
    const maxGap = longestPause(stream.arrivals, asked, answered);
    const took = answered - asked;
    expect(maxGap, `longest pause ${maxGap.toFixed(1)} ms while a ${took.toFixed(0)} ms long request was out (${here.toFixed(0)} ms to tokenize it on the event loop)`).toBeLessThan(here / 3);
  });

  it('every route that tokenizes a client text counts a long one exactly', async () => {
    // Just past the length that goes to the thread, and a list that is past it only together.
    const text = textOf(OFF_LOOP_CHARS + 100);
    const half = textOf(OFF_LOOP_CHARS / 2);
    const tok = model.tokenizer;
    const count = tok.encode(text).length;
    const tokenized = await post(`${srv.url}/tokenize`, { model: 'qwen3', prompt: text });
    expect(tokenized.json.tokens).toEqual(tok.encode(text));
    const chatTokenized = await post(`${srv.url}/tokenize`, { model: 'qwen3', messages: [{ role: 'user', content: text }] });
    expect(chatTokenized.json.tokens).toEqual(chatIds(text));

    // Refused as past the context, each with the count it has.
    const refusals: Array<[string, unknown, string]> = [
      ['/v1/completions', { model: 'qwen3', prompt: text, max_tokens: 1 }, `(${count} in the prompt,`],
      ['/v1/completions', { model: 'qwen3', prompt: ['hi', half, half], max_tokens: 1 }, `(${tok.encode(half).length} in the prompt,`],
      ['/v1/embeddings', { model: 'qwen3', input: ['hi', text] }, `input[1] has ${tok.encodeWithSpecialTokens(text).length} tokens`],
      ['/v1/embeddings', { model: 'qwen3', input: text, add_special_tokens: false }, `input has ${count} tokens`],
      ['/api/embed', { model: 'qwen3', input: ['hi', text], truncate: false }, `input[1] has ${tok.encodeWithSpecialTokens(text).length} tokens`],
      ['/api/generate', { model: 'qwen3', prompt: text, raw: true, stream: false }, `(${count} in the prompt,`],
    ];
    for (const [route, body, says] of refusals) {
      const r = await post(`${srv.url}${route}`, body);
      expect([route, r.status, r.text]).toEqual([route, 400, expect.stringContaining(says)]);
    }
    // A rerank pair: the model card's frame (its prefix and suffix, as a short pair's usage shows them) around the pair's text.
    const pairTokens = (doc: string) => tok.encode(`<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n<Query>: which?\n<Document>: ${doc}`, { allowSpecial: false }).length;
    const short = await post(`${srv.url}/v1/rerank`, { model: 'qwen3', query: 'which?', documents: ['short'] });
    const frame = short.json.usage.total_tokens - pairTokens('short');
    const rerank = await post(`${srv.url}/v1/rerank`, { model: 'qwen3', query: 'which?', documents: ['short', text] });
    expect(rerank.status, rerank.text).toBe(400);
    expect(errorOf(rerank).message).toContain(`documents[1] makes a prompt of ${frame + pairTokens(text)} tokens`);
  });
});
