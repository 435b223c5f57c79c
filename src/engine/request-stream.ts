// One request's events as an AsyncIterable: the engine pushes, the consumer pulls. Leaving a
// `for await` early (break, throw) cancels the request.
import type { TokenEvent } from './types.js';

export class RequestStream implements AsyncIterable<TokenEvent> {
  private queue: TokenEvent[] = [];
  private waiter: ((r: IteratorResult<TokenEvent>) => void) | undefined;
  private done = false;
  private iterated = false;

  constructor(private readonly onAbandon: () => void) {}

  get finished(): boolean {
    return this.done;
  }

  push(ev: TokenEvent): void {
    if (this.done) return;
    if (ev.finishReason) this.done = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: ev, done: false });
    } else {
      this.queue.push(ev);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
    if (this.iterated) throw new Error('a request stream can be iterated once');
    this.iterated = true;
    return {
      next: () => {
        const ev = this.queue.shift();
        if (ev) return Promise.resolve({ value: ev, done: false });
        if (this.done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.waiter = resolve;
        });
      },
      return: () => {
        if (!this.done) this.onAbandon();
        this.queue = [];
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
