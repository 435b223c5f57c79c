// How a prompt leaves the think block of the turn being written, and what follows from it: how
// the output is read for its think block, and where a constrained answer's grammar starts. Only
// the final turn counts: earlier turns' blocks (kept in history after a tool call, or spelled in
// a user's text) say nothing about the answer now being written.
import type { OutputOptions } from '../parse/output.js';
import { thinkClose, thinkOpen } from '../parse/reasoning.js';
import type { AnswerThinking } from '../structured/answer-grammar.js';

const turnStart = '<|im_start|>';

/**
 * Where the final turn stands with its think block: 'open', opened and not closed (a template
 * that opens it in the generation prompt, or a continued assistant turn cut while thinking);
 * 'closed', its last think tag is `</think>` (a continued assistant turn past its reasoning,
 * which Qwen3's template always writes with a block, or enable_thinking false's empty block);
 * 'none', no think tag in it.
 */
export function promptThinkBlock(prompt: string): 'open' | 'closed' | 'none' {
  const turn = prompt.lastIndexOf(turnStart);
  const open = prompt.lastIndexOf(thinkOpen);
  const close = prompt.lastIndexOf(thinkClose);
  if (open > close && open > turn) return 'open';
  if (close > open && close > turn) return 'closed';
  return 'none';
}

/**
 * How a choice's output is read for its think block. A prompt that leaves a block open makes the
 * output reasoning up to `</think>` with thinking on or off: templates that open the block in the
 * generation prompt (the Qwen3 *-Thinking-2507 checkpoints') do so whatever enable_thinking says,
 * and the model thinks there all the same. The tag such a generation prompt wrote is handed back
 * (promptOpening) for content that keeps the block inline; a continued assistant turn opened
 * the block in the client's own text, which has the tag already. A prompt whose turn already
 * closed its block leaves only the answer to write, thinking on or off: the output is answer
 * content from its first token, as vLLM reads it (its reasoning parser finds the prompt's
 * reasoning ended, and structured output applies at once).
 */
export function thinkReading(thinking: boolean, prompt: string, continued: boolean): Pick<OutputOptions, 'thinking' | 'startInReasoning' | 'promptOpening'> {
  const block = promptThinkBlock(prompt);
  if (block === 'closed') return { thinking: false, startInReasoning: false };
  if (block === 'none') return { thinking, startInReasoning: false };
  return { thinking: true, startInReasoning: true, promptOpening: continued ? undefined : prompt.slice(prompt.lastIndexOf(thinkOpen)) };
}

/**
 * Where a constrained answer's grammar starts, by the rule the output is read by: inside the
 * block a prompt left open (whatever enable_thinking says), else at a block of the model's own
 * when thinking is on, else at the answer (thinking off, or the prompt's block already closed).
 */
export function answerThinking(reading: Pick<OutputOptions, 'thinking' | 'startInReasoning'>): AnswerThinking {
  return reading.startInReasoning ? 'open' : reading.thinking;
}
