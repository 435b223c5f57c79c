// The Messages API's context overflows, worded as Anthropic's API words them: the text clients
// tell an overflow by (LangChain's ContextOverflowError, agents that compact or lower max_tokens).
import { describe, expect, it } from 'vitest';
import { anthropicEnvelope, messagesTokenBudget } from '../../src/server/anthropic/errors.js';
import { ApiError } from '../../src/server/errors.js';

const refusal = (fn: () => unknown): ApiError => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
};

describe('messagesTokenBudget', () => {
  const ctx = { maxSeqLen: 4096, maxInputLen: 4096 };

  it('takes a prompt and max_tokens that fill the context exactly', () => {
    expect(messagesTokenBudget(1, 4095, ctx)).toBe(1);
    expect(messagesTokenBudget(3996, 100, ctx)).toBe(3996);
  });

  it('a prompt that leaves no room for one answer token: "prompt is too long", the envelope as Anthropic sends it', () => {
    const err = refusal(() => messagesTokenBudget(1, 4096, ctx));
    expect(err).toMatchObject({ status: 400, code: 'context_length_exceeded', param: null });
    // Whole, with no parameter prefix: some clients match the message from start to end.
    expect(anthropicEnvelope(err)).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: 'prompt is too long: 4096 tokens > 4095 maximum' } });
    // The prompt is refused as too long whatever max_tokens asks: no smaller max_tokens would fit it.
    expect(refusal(() => messagesTokenBudget(4000, 5000, ctx)).message).toBe('prompt is too long: 5000 tokens > 4095 maximum');
  });

  it('a prompt that fits with a max_tokens the rest cannot hold: the sum, with the three numbers', () => {
    const err = refusal(() => messagesTokenBudget(3997, 100, ctx));
    expect(err).toMatchObject({ status: 400, code: 'context_length_exceeded', param: null });
    expect(anthropicEnvelope(err).error.message).toBe('input length and `max_tokens` exceed context limit: 100 + 3997 > 4096, decrease input length or `max_tokens` and try again');
  });

  it("an engine's max_input_len is the longest prompt where it is the tighter limit", () => {
    const engine = { maxSeqLen: 256, maxInputLen: 16 };
    expect(messagesTokenBudget(240, 16, engine)).toBe(240);
    expect(refusal(() => messagesTokenBudget(4, 17, engine)).message).toBe('prompt is too long: 17 tokens > 16 maximum');
    expect(refusal(() => messagesTokenBudget(241, 16, engine)).message).toMatch(/^input length and `max_tokens` exceed context limit: 16 \+ 241 > 256,/);
  });
});
