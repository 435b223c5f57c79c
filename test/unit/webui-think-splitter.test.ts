// The web page's think splitter (web/think-splitter.js, plain browser JS) on model-style outputs
// cut into two chunks at every position: the think block and the answer come out the same
// whichever way the text arrives, and no fragment of a tag ever shows.
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain JavaScript served to the browser, without type declarations.
import { ThinkSplitter } from '../../web/think-splitter.js';

function split(chunks: string[]): { reasoning: string; content: string } {
  const s = new ThinkSplitter();
  const out = { reasoning: '', content: '' };
  for (const part of [...chunks.map((c) => s.push(c)), s.finish()]) {
    out.reasoning += part.reasoning;
    out.content += part.content;
  }
  return out;
}

const cases: { name: string; text: string; reasoning: string; content: string }[] = [
  { name: 'think block then answer', text: '<think>\nLet me see.\n</think>\n\nThe answer is 4.', reasoning: '\nLet me see.\n', content: 'The answer is 4.' },
  { name: 'empty think block (thinking off)', text: '<think>\n\n</think>\n\nHi!', reasoning: '\n\n', content: 'Hi!' },
  { name: 'leading whitespace before the tag', text: '\n <think>x</think>y', reasoning: 'x', content: 'y' },
  { name: 'no think block', text: 'Plain <think> is text here', reasoning: '', content: 'Plain <think> is text here' },
  { name: 'cut off inside the think block', text: '<think>\nstill thinking </thi', reasoning: '\nstill thinking </thi', content: '' },
  { name: 'a tag-like prefix that is not a tag', text: '<thin air', reasoning: '', content: '<thin air' },
  { name: 'answer mentioning the tag', text: '<think>a</think>\nUse </think> to close.', reasoning: 'a', content: 'Use </think> to close.' },
];

describe('web ThinkSplitter', () => {
  for (const c of cases) {
    it(`${c.name}: the same split at every cut`, () => {
      expect(split([c.text])).toEqual({ reasoning: c.reasoning, content: c.content });
      for (let at = 0; at <= c.text.length; at++) {
        expect(split([c.text.slice(0, at), c.text.slice(at)]), `cut at ${at}`).toEqual({ reasoning: c.reasoning, content: c.content });
      }
      // One character at a time, as a slow stream would deliver it.
      expect(split([...c.text])).toEqual({ reasoning: c.reasoning, content: c.content });
    });
  }
});
