// Reranking end to end on the real runtime: vLLM's /v1/rerank (and /rerank, /v2/rerank) and
// /v1/score (and /score). Each pair is scored as Qwen3-Reranker's model card does it: its prompt
// format (written out here, apart from the server's), then p(yes) / (p(yes) + p(no)) at the last
// position. The expected scores come from the runtime's prompt logprobs of the same prompt with
// "yes" and with "no" appended: another path through the engine than the server's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultSampling } from '../../src/engine/types.js';
import { loadTiny, post, serve, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;

beforeAll(async () => {
  model = await loadTiny('tiny-a', { maxSeqLen: 401 });
  srv = await serve(model);
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

const WEB = 'Given a web search query, retrieve relevant passages that answer the query';
function cardPrompt(query: string, doc: string, instruction = WEB): number[] {
  const tok = model.tokenizer;
  const prefix = '<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n';
  const suffix = '<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n';
  return [...tok.encode(prefix), ...tok.encode(`<Instruct>: ${instruction}\n<Query>: ${query}\n<Document>: ${doc}`, { allowSpecial: false }), ...tok.encode(suffix)];
}

/** logprob of `next` after `tokens`, through a generation request's prompt logprobs. */
async function promptLogprob(tokens: number[], next: number): Promise<number> {
  const all = [...tokens, next];
  for await (const ev of model.engine.submit({ tokens: all, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 1, promptLogprobs: true, promptTopLogprobs: 0 }))
    if (ev.promptLogprobs) return ev.promptLogprobs[all.length - 1]!.logprob;
  throw new Error('no prompt logprobs');
}
async function expected(tokens: number[]): Promise<number> {
  const [yes] = model.tokenizer.encode('yes');
  const [no] = model.tokenizer.encode('no');
  const [a, b] = await Promise.all([promptLogprob(tokens, yes), promptLogprob(tokens, no)]);
  return Math.exp(a) / (Math.exp(a) + Math.exp(b));
}

const query = 'What is the capital of France?';
const docs = ['Paris is the capital of France.', 'Bananas are yellow.', 'The Eiffel Tower stands in Paris.'];

describe('/v1/rerank', () => {
  it('scores every document as the model card does, best first, with its text and the tokens used', async () => {
    const r = await post(`${srv.url}/v1/rerank`, { model: 'qwen3', query, documents: [docs[0], { text: docs[1] }, docs[2]] });
    expect(r.status, r.text).toBe(200);
    expect(r.json.id).toMatch(/^rerank-[0-9a-f]{32}$/);
    expect(r.json.model).toBe('qwen3');
    const prompts = docs.map((d) => cardPrompt(query, d));
    expect(r.json.usage).toEqual({ total_tokens: prompts.flat().length });
    const results = r.json.results as { index: number; document: { text: string }; relevance_score: number }[];
    expect(results.map((x) => x.index).sort()).toEqual([0, 1, 2]);
    for (let i = 1; i < results.length; i++) expect(results[i - 1].relevance_score).toBeGreaterThanOrEqual(results[i].relevance_score);
    for (const x of results) {
      expect(x.document).toEqual({ text: docs[x.index] });
      expect(x.relevance_score).toBeGreaterThan(0);
      expect(x.relevance_score).toBeLessThan(1);
      expect(Math.abs(x.relevance_score - (await expected(prompts[x.index]))), `document ${x.index}`).toBeLessThan(1e-5);
    }
    // The same answers under vLLM's other paths; top_n and return_documents shape them.
    for (const path of ['/rerank', '/v2/rerank']) {
      const again = await post(`${srv.url}${path}`, { query, documents: docs, top_n: 2, return_documents: false });
      expect(again.status, path).toBe(200);
      expect(again.json.results).toEqual(results.slice(0, 2).map(({ index, relevance_score }) => ({ index, relevance_score })));
    }
  });

  it('takes an instruction, and a query the client formatted itself as it is', async () => {
    const instruction = 'Given a question, find the sentence that answers it';
    const r = await post(`${srv.url}/v1/rerank`, { query, documents: [docs[1]], instruction });
    expect(Math.abs(r.json.results[0].relevance_score - (await expected(cardPrompt(query, docs[1], instruction))))).toBeLessThan(1e-5);
    const formatted = '<|im_start|>system\nJudge.<|im_end|>\n<|im_start|>user\n<Query>: ' + query + '\n';
    const doc = '<Document>: ' + docs[0] + '<|im_end|>\n<|im_start|>assistant\n';
    const own = await post(`${srv.url}/v1/rerank`, { query: formatted, documents: [doc] });
    expect(own.json.usage.total_tokens).toBe(model.tokenizer.encode(formatted + doc).length);
    expect(Math.abs(own.json.results[0].relevance_score - (await expected(model.tokenizer.encode(formatted + doc))))).toBeLessThan(1e-5);
  });

  it('refuses what it cannot score, naming the field; truncate_prompt_tokens cuts the document', async () => {
    const none = await post(`${srv.url}/v1/rerank`, { query, documents: [] });
    expect(none.status).toBe(400);
    expect(none.json.error.param).toBe('documents');
    const long = 'word '.repeat(600);
    const tooLong = await post(`${srv.url}/v1/rerank`, { query, documents: [docs[0], long] });
    expect(tooLong.status).toBe(400);
    expect(tooLong.json.error).toMatchObject({ param: 'documents[1]', code: 'context_length_exceeded' });
    expect(tooLong.json.error.message).toMatch(/maximum context length is 400 tokens.*truncate_prompt_tokens/);
    const cut = await post(`${srv.url}/v1/rerank`, { query, documents: [long], truncate_prompt_tokens: 120 });
    expect(cut.status, cut.text).toBe(200);
    expect(cut.json.usage.total_tokens).toBe(120);
    const wrongModel = await post(`${srv.url}/v1/rerank`, { model: 'other', query, documents: docs });
    expect(wrongModel.status).toBe(404);
  });
});

describe('/v1/score', () => {
  it('one text_1 against every text_2, or the lists in pairs; the scores the rerank route gives', async () => {
    const r = await post(`${srv.url}/v1/score`, { model: 'qwen3', text_1: query, text_2: docs });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ object: 'list', model: 'qwen3' });
    expect(r.json.id).toMatch(/^score-/);
    const ranked = await post(`${srv.url}/score`, { text_1: query, text_2: docs });
    const byIndex = (await post(`${srv.url}/v1/rerank`, { query, documents: docs })).json.results.sort((a: { index: number }, b: { index: number }) => a.index - b.index);
    expect(r.json.data.map((d: { index: number; object: string; score: number }) => [d.index, d.object, d.score])).toEqual(byIndex.map((x: { index: number; relevance_score: number }) => [x.index, 'score', x.relevance_score]));
    expect(ranked.json.data).toEqual(r.json.data);
    const tokens = docs.map((d) => cardPrompt(query, d)).flat().length;
    expect(r.json.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0 });
    const pairs = await post(`${srv.url}/v1/score`, { text_1: ['Is it yellow?', query], text_2: [docs[1], docs[0]] });
    expect(Math.abs(pairs.json.data[0].score - (await expected(cardPrompt('Is it yellow?', docs[1]))))).toBeLessThan(1e-5);
    expect(pairs.json.data[1].score).toBe(r.json.data[0].score);
    const mismatch = await post(`${srv.url}/v1/score`, { text_1: ['a', 'b'], text_2: ['x', 'y', 'z'] });
    expect(mismatch.status).toBe(400);
    expect(mismatch.json.error.param).toBe('text_1');
    expect(mismatch.json.error.message).toMatch(/text_1 has 2 texts and text_2 3/);
  });
});
