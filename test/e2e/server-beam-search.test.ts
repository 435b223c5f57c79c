// vLLM's use_beam_search through the real server and the official openai client: n beams
// searched and the n best returned, ranked by cumulative logprob / length ^ length_penalty. Each
// returned token's logprob is checked against the model's own, scored independently (the prompt
// plus the beam sent back as a prompt, echo + logprobs: lm-eval's way); a width of one is greedy
// decoding; the chat endpoint, streaming and the refusals name what they concern.
import { describe, expect, it } from 'vitest';
import { post, serveForFile } from './server-harness.js';

const { srv } = serveForFile('tiny-b');
const prompt = 'The history of the sea';

interface Choice {
  text: string;
  index: number;
  finish_reason: string;
  logprobs: { tokens: string[]; token_logprobs: number[] };
  token_ids?: number[];
}

async function complete(body: Record<string, unknown>): Promise<{ choices: Choice[]; usage: { prompt_tokens: number; completion_tokens: number } }> {
  const r = await post(`${srv().url}/v1/completions`, { model: 'qwen3', prompt, max_tokens: 8, ...body });
  expect(r.status, r.text).toBe(200);
  return r.json;
}

describe('beam search (use_beam_search)', () => {
  it('a beam width of one is greedy decoding', async () => {
    const greedy = await complete({ temperature: 0, ignore_eos: true });
    const beam = await complete({ use_beam_search: true, n: 1, ignore_eos: true, temperature: 0.9, seed: 3 });
    expect(beam.choices[0].text).toBe(greedy.choices[0].text);
  });

  it('returns n distinct beams, best first, whose logprobs are the model\'s own', async () => {
    const width = 4;
    const r = await complete({ use_beam_search: true, n: width, ignore_eos: true, logprobs: 2, return_token_ids: true });
    expect(r.choices).toHaveLength(width);
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    const ids = r.choices.map((c) => c.token_ids!);
    expect(new Set(ids.map((t) => t.join(','))).size).toBe(width);
    for (const c of r.choices) {
      expect(c.token_ids).toHaveLength(8);
      expect(c.finish_reason).toBe('length');
    }
    // Equal lengths: the ranking is by cumulative logprob, best first.
    const sums = r.choices.map((c) => c.logprobs.token_logprobs.reduce((a, b) => a + b, 0));
    for (let i = 1; i < width; i++) expect(sums[i]).toBeLessThanOrEqual(sums[i - 1] + 1e-9);
    const greedy = await complete({ temperature: 0, ignore_eos: true, logprobs: 0 });
    expect(sums[0]).toBeGreaterThanOrEqual(greedy.choices[0].logprobs.token_logprobs.reduce((a, b) => a + b, 0) - 1e-6);
    // Each beam scored as a prompt: the logprobs of its tokens after the prompt are the beam's.
    const promptIds = (await post(`${srv().url}/tokenize`, { model: 'qwen3', prompt })).json.tokens as number[];
    expect(r.usage.prompt_tokens).toBe(promptIds.length);
    for (const c of r.choices) {
      const scored = await complete({ prompt: [...promptIds, ...c.token_ids!], max_tokens: 0, echo: true, logprobs: 0 });
      const tail = scored.choices[0].logprobs.token_logprobs.slice(promptIds.length);
      expect(tail).toHaveLength(8);
      tail.forEach((lp, i) => expect(lp).toBeCloseTo(c.logprobs.token_logprobs[i], 4));
    }
  });

  it('ends beams at stop tokens and ranks them by length_penalty; streaming gives the same answers', async () => {
    // A stop token the model ranks high after the prompt: some beams end on it at once.
    const first = await complete({ temperature: 0, max_tokens: 1, logprobs: 5, return_token_ids: true });
    const likely = first.choices[0].token_ids![0];
    const ask = (extra: Record<string, unknown>) => complete({ use_beam_search: true, n: 3, stop_token_ids: [likely], return_token_ids: true, ...extra });
    const plain = await ask({});
    expect(plain.choices.some((c) => c.finish_reason === 'stop')).toBe(true);
    // A negative length penalty favours short answers: the beam that stopped at once leads.
    const short = await ask({ length_penalty: -4 });
    expect(short.choices[0].finish_reason).toBe('stop');
    expect(short.choices[0].token_ids).toEqual([likely]);
    // min_tokens holds the stop token back: no beam ends before 3 tokens.
    const held = await ask({ length_penalty: -4, min_tokens: 3 });
    for (const c of held.choices) expect(c.token_ids!.length).toBeGreaterThanOrEqual(c.finish_reason === 'stop' ? 4 : 8);
    const stream = await srv().client.completions.create({
      model: 'qwen3',
      prompt,
      max_tokens: 8,
      n: 3,
      stream: true,
      // @ts-expect-error vLLM's own fields
      use_beam_search: true,
      stop_token_ids: [likely],
    });
    const texts = ['', '', ''];
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.text;
    expect(texts).toEqual(plain.choices.map((c) => c.text));
  });

  it('the chat endpoint answers with n beams through the openai client', async () => {
    const r = await srv().client.chat.completions.create({
      model: 'qwen3',
      messages: [{ role: 'user', content: 'Name a colour.' }],
      max_tokens: 6,
      n: 2,
      logprobs: true,
      // @ts-expect-error vLLM's own fields
      use_beam_search: true,
      ignore_eos: true,
    });
    expect(r.choices).toHaveLength(2);
    expect(r.choices[0].message.content).not.toBe(r.choices[1].message.content);
    const sums = r.choices.map((c) => c.logprobs!.content!.reduce((a, t) => a + t.logprob, 0));
    expect(sums[0]).toBeGreaterThanOrEqual(sums[1]);
    expect(r.usage!.completion_tokens).toBe(12);
  });

  it('refuses what a search cannot honour, naming the field', async () => {
    const refused = async (body: Record<string, unknown>, param: string, message: RegExp) => {
      const r = await post(`${srv().url}/v1/completions`, { model: 'qwen3', prompt, max_tokens: 4, ...body });
      expect(r.status, r.text).toBe(400);
      expect(r.json.error.param).toBe(param);
      expect(r.json.error.message).toMatch(message);
    };
    await refused({ use_beam_search: true, n: 51 }, 'n', /at most 50/);
    await refused({ use_beam_search: true, logit_bias: { '5': 3 } }, 'logit_bias', /does not combine/);
    await refused({ use_beam_search: true, allowed_token_ids: [1, 2, 3] }, 'use_beam_search', /A grammar, a JSON schema, a forced tool call or allowed_token_ids/);
    await refused({ use_beam_search: true, prompt_logprobs: 1 }, 'prompt_logprobs', /Prompt logprobs/);
    // Sampling, length_penalty ranks nothing and changes nothing, as in vLLM.
    const sampled = await complete({ temperature: 0, length_penalty: 2 });
    expect(sampled.choices[0].text).toBe((await complete({ temperature: 0 })).choices[0].text);
  });
});
