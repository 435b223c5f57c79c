// vLLM's prompt_logprobs on the real runtime: each prompt token's logprob (checked against
// transformers' numbers), its rank, and the likeliest tokens at its position, keyed by token id in
// vLLM's order (the prompt token first); chat lists them once for the prompt every choice shares,
// completions in each choice; what vLLM refuses is a 400 naming prompt_logprobs.
import { describe, expect, it } from 'vitest';
import { withWrittenKeyOrder } from '../../src/parse/ordered-json.js';
import { refs } from '../helpers/fixtures.js';
import { post, serveForFile } from './server-harness.js';

const file = serveForFile('tiny-a');
const englishRef = refs('tiny-a').prompts.find((p) => p.name === 'english')!;

interface Entry {
  logprob: number;
  rank: number;
  decoded_token: string;
}
type Listed = (Record<string, Entry> | null)[];

/** The answer as written: objects keep the key order of the wire (JSON.parse puts digit keys first, ascending). */
async function ordered(path: string, body: Record<string, unknown>): Promise<{ status: number; json: any }> {
  const r = await post(`${file.srv().url}${path}`, body);
  return { status: r.status, json: withWrittenKeyOrder(r.text, JSON.parse(r.text)) };
}

/** Every position after the first: the prompt token first, its rank, then `top` alternatives best first, ranked 1..top. */
function checkListed(listed: Listed, ids: readonly number[], top: number): void {
  expect(listed).toHaveLength(ids.length);
  expect(listed[0]).toBeNull();
  for (let k = 1; k < ids.length; k++) {
    const entries = Object.entries(listed[k]!);
    const [first, own] = entries[0];
    expect(first, `position ${k}`).toBe(String(ids[k]));
    expect(own.decoded_token).toBe(new TextDecoder().decode(file.model().tokenizer.tokenBytes(ids[k])));
    const alternatives = entries.slice(1).map(([, e]) => e);
    // The token's own rank: one more than the alternatives likelier than it.
    const likelier = alternatives.filter((e) => e.logprob > own.logprob + 1e-6).length;
    if (own.rank <= top) expect(own.rank).toBe(likelier + 1);
    else expect(likelier).toBe(top);
    expect(entries.length).toBe(own.rank <= top ? top : top + 1);
    alternatives.forEach((e, i) => {
      if (i > 0) expect(e.logprob).toBeLessThanOrEqual(alternatives[i - 1].logprob);
      expect(e.rank).toBeGreaterThanOrEqual(1);
    });
  }
}

describe('prompt_logprobs', () => {
  it('completions: the prompt tokens as transformers scores them, with rank and alternatives, in each choice', async () => {
    const ids = englishRef.prompt_ids;
    const r = await ordered('/v1/completions', { model: 'qwen3', prompt: ids, max_tokens: 2, temperature: 0, prompt_logprobs: 3, n: 2 });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    for (const choice of r.json.choices) {
      const listed: Listed = choice.prompt_logprobs;
      checkListed(listed, ids, 3);
      // listed[k] scores ids[k] given the ones before it: transformers' prompt_logprobs[k - 1].
      const diffs = englishRef.prompt_logprobs.map((want, k) => Math.abs(listed[k + 1]![String(ids[k + 1])].logprob - want));
      expect(Math.max(...diffs)).toBeLessThan(0.5);
      expect(diffs.reduce((a, b) => a + b, 0) / diffs.length).toBeLessThan(0.1);
    }
    expect(r.json.choices[1].prompt_logprobs).toEqual(r.json.choices[0].prompt_logprobs);
    // Two prompts, two choices each: each prompt's choices list that prompt's tokens.
    const other = englishRef.prompt_ids.slice(0, 5);
    const two = await ordered('/v1/completions', { model: 'qwen3', prompt: [ids, other], max_tokens: 1, prompt_logprobs: 1, n: 2 });
    expect(two.json.choices.map((c: { prompt_logprobs: Listed }) => c.prompt_logprobs.length)).toEqual([ids.length, ids.length, other.length, other.length]);
    checkListed(two.json.choices[3].prompt_logprobs, other, 1);
    expect(two.json.choices[2].prompt_logprobs).toEqual(two.json.choices[3].prompt_logprobs);
    // Without prompt_logprobs there is no such field; with max_tokens 0 only the prompt is scored.
    const plain = await ordered('/v1/completions', { model: 'qwen3', prompt: ids, max_tokens: 1 });
    expect(plain.json.choices[0]).not.toHaveProperty('prompt_logprobs');
    const scored = await ordered('/v1/completions', { model: 'qwen3', prompt: ids, max_tokens: 0, prompt_logprobs: 0 });
    expect(scored.status, JSON.stringify(scored.json)).toBe(200);
    expect(scored.json.choices[0].text).toBe('');
    checkListed(scored.json.choices[0].prompt_logprobs, ids, 0);
  });

  it('with echo and logprobs: the echo lists logprobs alternatives, prompt_logprobs its own count', async () => {
    const ids = englishRef.prompt_ids;
    const r = await ordered('/v1/completions', { model: 'qwen3', prompt: ids, max_tokens: 0, echo: true, logprobs: 1, prompt_logprobs: 4 });
    const c = r.json.choices[0];
    checkListed(c.prompt_logprobs, ids, 4);
    for (let k = 1; k < ids.length; k++) {
      expect(Object.keys(c.logprobs.top_logprobs[k]).length).toBeLessThanOrEqual(2);
      expect(c.logprobs.token_logprobs[k]).toBeCloseTo(c.prompt_logprobs[k][String(ids[k])].logprob, 5);
    }
  });

  it('chat: one list for the rendered prompt, at the top of the answer, whatever n is', async () => {
    const messages = [{ role: 'user', content: 'The sea is deep.' }];
    const ids: number[] = (await post(`${file.srv().url}/tokenize`, { model: 'qwen3', messages })).json.tokens;
    const r = await ordered('/v1/chat/completions', { model: 'qwen3', messages, max_tokens: 3, prompt_logprobs: 2, n: 2, seed: 1 });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.usage.prompt_tokens).toBe(ids.length);
    checkListed(r.json.prompt_logprobs, ids, 2);
    for (const choice of r.json.choices) expect(choice).not.toHaveProperty('prompt_logprobs');
  });

  it('more than 20 alternatives, a negative count, or alternatives on a streamed request: a 400 naming it', async () => {
    const cases: [string, Record<string, unknown>][] = [
      ['/v1/completions', { prompt: 'The sea', prompt_logprobs: 21 }],
      ['/v1/completions', { prompt: 'The sea', prompt_logprobs: -1 }],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], prompt_logprobs: 1, stream: true }],
      ['/v1/completions', { prompt: 'The sea', prompt_logprobs: 2, stream: true }],
    ];
    for (const [path, body] of cases) {
      const r = await post(`${file.srv().url}${path}`, { model: 'qwen3', max_tokens: 2, ...body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error).toMatchObject({ param: 'prompt_logprobs', type: 'invalid_request_error' });
    }
  });
});
