// Server-sent events as OpenAI streams them: `data: <json>\n\n` frames, `data: [DONE]` last.
// Writes respect backpressure so a slow reader slows its own request, not the process's memory.
import type { ServerResponse } from 'node:http';
import type { ApiError } from './errors.js';

export class SseWriter {
  private started = false;
  private ended = false;

  constructor(private readonly res: ServerResponse) {}

  get isStarted(): boolean {
    return this.started;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    this.res.flushHeaders();
  }

  /** Resolves when the frame is written or buffered below the high-water mark. */
  async send(data: unknown): Promise<void> {
    if (this.ended || this.res.destroyed) return;
    this.start();
    if (!this.res.write(`data: ${JSON.stringify(data)}\n\n`)) await drained(this.res);
  }

  /** A typed event (the Responses API's framing): `event: <type>` then its data line. */
  async event(type: string, data: unknown): Promise<void> {
    if (this.ended || this.res.destroyed) return;
    this.start();
    if (!this.res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`)) await drained(this.res);
  }

  /** Ends a typed-event stream: the Responses API sends no [DONE] line. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.res.destroyed) return;
    this.start();
    this.res.end();
  }

  /** An error after the stream began: one data frame with the envelope, then [DONE]. */
  async fail(err: ApiError): Promise<void> {
    await this.send(err.envelope());
    this.done();
  }

  done(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.res.destroyed) return;
    this.start();
    this.res.end('data: [DONE]\n\n');
  }
}

/** Resolves once the response can take more (its buffer drained) or is gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      res.off('drain', finish);
      res.off('close', finish);
      resolve();
    };
    res.on('drain', finish);
    res.on('close', finish);
  });
}
