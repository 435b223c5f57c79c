// Stop strings over streamed text. A stop string can arrive split across tokens, so the tail that
// could still become one is held back until the next chunk settles it: nothing of a stop string
// ever reaches the client, and text before it is released as soon as it cannot be part of one.
import { partialMarkerLength } from './held-suffix.js';

export interface StopPush {
  /** Text that is safe to release. */
  text: string;
  /** Set when a stop string matched: generation should end; `text` holds what came before it. */
  stop?: string;
}

export class StopStringMatcher {
  private readonly stops: string[];
  private held = '';
  private stopped = false;

  /** keep: the matched stop string is released too, as the text's end (include_stop_str_in_output). */
  constructor(
    stops: readonly string[],
    private readonly keep = false,
  ) {
    this.stops = [...new Set(stops.filter((s) => s.length > 0))];
  }

  get active(): boolean {
    return this.stops.length > 0;
  }

  /**
   * armed false (fewer than min_tokens tokens out): nothing is matched and all the text is
   * released; matching starts with the first armed push, as vLLM's stop check starts after min_tokens.
   */
  push(text: string, armed = true): StopPush {
    if (this.stopped) return { text: '' };
    if (this.stops.length === 0) return { text };
    if (!armed) {
      const all = this.held + text;
      this.held = '';
      return { text: all };
    }
    const buf = this.held + text;
    let cut = -1;
    let which = '';
    for (const stop of this.stops) {
      const at = buf.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        which = stop;
      }
    }
    if (cut >= 0) {
      this.stopped = true;
      this.held = '';
      return { text: buf.slice(0, this.keep ? cut + which.length : cut), stop: which };
    }
    const keep = partialMarkerLength(buf, this.stops);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep) };
  }

  /** The end of generation: whatever was held back was not a stop string after all. */
  finish(): string {
    const rest = this.stopped ? '' : this.held;
    this.held = '';
    return rest;
  }
}
