// The streaming loop both endpoints share: forward updates as chunks; an error after the stream
// began becomes one data frame with the envelope, then [DONE].
import { toApiError } from '../errors.js';
import type { ChoiceUpdate } from '../generate.js';
import type { SseWriter } from '../sse.js';

/** Returns true when every update went out; false when an error frame ended the stream. */
export async function streamUpdates(
  sse: SseWriter,
  updates: AsyncGenerator<ChoiceUpdate>,
  send: (u: ChoiceUpdate) => Promise<void>,
): Promise<boolean> {
  try {
    for await (const u of updates) await send(u);
    return true;
  } catch (err) {
    await sse.fail(toApiError(err));
    return false;
  }
}
