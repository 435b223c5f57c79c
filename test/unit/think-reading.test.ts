// Where a rendered prompt leaves the think block of the turn being written, and how the output is
// then read and constrained. Only the final turn counts: a block an earlier turn closed (Qwen3's
// template keeps the reasoning of the turns since the last user message) leaves the model free to
// think in the new turn.
import { describe, expect, it } from 'vitest';
import { answerThinking, promptThinkBlock, thinkReading } from '../../src/server/think-reading.js';

const user = '<|im_start|>user\nHi<|im_end|>\n';
const generation = `${user}<|im_start|>assistant\n`;
const continuedPastBlock = `${user}<|im_start|>assistant\n<think>\nA greeting.\n</think>\n\n{"a": `;
const continuedInBlock = `${user}<|im_start|>assistant\n<think>\n\n</think>\n\n<think>\nA greet`;
const afterToolCall = `${user}<|im_start|>assistant\n<think>\nCall it.\n</think>\n\n<tool_call>\n{}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n1\n</tool_response><|im_end|>\n<|im_start|>assistant\n`;

describe('promptThinkBlock', () => {
  it("reads the final turn's last think tag", () => {
    expect(promptThinkBlock(generation)).toBe('none');
    expect(promptThinkBlock(`${generation}<think>\n`)).toBe('open');
    expect(promptThinkBlock(`${generation}<think>\n\n</think>\n\n`)).toBe('closed');
    expect(promptThinkBlock(continuedPastBlock)).toBe('closed');
    expect(promptThinkBlock(continuedInBlock)).toBe('open');
  });

  it("an earlier turn's block does not count", () => {
    expect(promptThinkBlock(afterToolCall)).toBe('none');
  });
});

describe('thinkReading and answerThinking', () => {
  it('a closed block leaves only the answer, thinking on or off', () => {
    for (const thinking of [true, false]) {
      const reading = thinkReading(thinking, continuedPastBlock, true);
      expect(reading).toEqual({ thinking: false, startInReasoning: false });
      expect(answerThinking(reading)).toBe(false);
    }
  });

  it('an open block is finished first; a generation prompt hands its tag back, a continued turn does not', () => {
    expect(thinkReading(false, `${generation}<think>\n`, false)).toEqual({ thinking: true, startInReasoning: true, promptOpening: '<think>\n' });
    const continued = thinkReading(true, continuedInBlock, true);
    expect(continued).toEqual({ thinking: true, startInReasoning: true, promptOpening: undefined });
    expect(answerThinking(continued)).toBe('open');
  });

  it('no block in the final turn: thinking as asked', () => {
    expect(answerThinking(thinkReading(true, afterToolCall, false))).toBe(true);
    expect(answerThinking(thinkReading(false, generation, false))).toBe(false);
  });
});
