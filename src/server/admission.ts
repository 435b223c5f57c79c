// Admission control: at most maxConcurrency requests generate at once, at most maxQueue wait for
// a turn in arrival order (by priority first, lower first, under the priority scheduling
// policy: other requests all have priority 0), and the rest are turned away with 429 at once
// instead of piling up.
import { queueFull } from './errors.js';

interface Waiter {
  priority: number;
  grant: () => void;
}

export class Admission {
  private active = 0;
  private readonly queue: Waiter[] = [];

  constructor(
    private readonly maxConcurrency: number,
    private readonly maxQueue: number,
  ) {}

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Resolves with a release function once the request may run. Throws 429 when the queue is
   * full; rejects with the signal's reason if the client leaves while it waits. A waiter goes
   * ahead of those with a higher priority value (vLLM's priority; 0 when none is asked).
   */
  acquire(signal?: AbortSignal, priority = 0): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.active < this.maxConcurrency && this.queue.length === 0) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (this.queue.length >= this.maxQueue) return Promise.reject(queueFull(this.active, this.queue.length));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const at = this.queue.indexOf(waiter);
        if (at >= 0) this.queue.splice(at, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        priority,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          this.active++;
          resolve(this.releaser());
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      // After every waiter of the same or a lower priority value: arrival order within a priority.
      const at = this.queue.findIndex((w) => w.priority > priority);
      if (at < 0) this.queue.push(waiter);
      else this.queue.splice(at, 0, waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      const next = this.queue.shift();
      if (next) next.grant();
    };
  }
}
