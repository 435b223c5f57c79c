// truncation "auto" on /v1/responses: when the conversation and the answer's budget do not fit
// the context, OpenAI drops input items from the conversation rather than refusing it. Here the
// oldest turns go first, a user turn and everything up to the next user turn at a time, so a
// tool result never loses the call it answers and the history still starts with a user turn;
// the instructions (system) and the newest user turn always stay. When even they do not fit,
// the request is refused as without truncation (the caller's token budget check).
import type { TemplateMessage } from './chat-messages.js';

export interface Fitted<P> {
  prompt: P;
  /** Turns dropped from the history's start (0: the whole history fits). */
  dropped: number;
}

/**
 * The longest suffix of `history` whose prompt `fits`, cut at user turns. `render` makes the
 * prompt of a history (the instructions are the caller's to add); `fits` says whether a prompt
 * leaves room for the answer.
 */
export async function fitHistory<P>(history: readonly TemplateMessage[], render: (h: readonly TemplateMessage[]) => Promise<P>, fits: (p: P) => boolean): Promise<Fitted<P>> {
  const whole = await render(history);
  if (fits(whole)) return { prompt: whole, dropped: 0 };
  const starts = history.flatMap((m, i) => (m.role === 'user' && i > 0 ? [i] : []));
  // Fewest dropped that fits: the prompt shrinks as the cut moves on, so search the cut points.
  let lo = 0;
  let hi = starts.length - 1;
  let best: Fitted<P> | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const prompt = await render(history.slice(starts[mid]));
    if (fits(prompt)) {
      best = { prompt, dropped: starts[mid] };
      hi = mid - 1;
    } else {
      lo = mid + 1;
    }
  }
  // Nothing fits: the newest user turn on, which the caller's budget check refuses by its size.
  return best ?? { prompt: starts.length > 0 ? await render(history.slice(starts[starts.length - 1])) : whole, dropped: starts.at(-1) ?? 0 };
}
