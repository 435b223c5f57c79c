// Ollama's streams: one JSON object per line (application/x-ndjson), the last one with done: true.
// The status line goes out with the first object, so a request refused before any output still
// gets its error status. Writes respect backpressure: a slow reader slows its own request only.
import type { ServerResponse } from 'node:http';
import { drained } from '../sse.js';

export class NdjsonWriter {
  private started = false;
  private ended = false;

  constructor(private readonly res: ServerResponse) {}

  get isStarted(): boolean {
    return this.started;
  }

  async line(data: unknown): Promise<void> {
    if (this.ended || this.res.destroyed) return;
    if (!this.started) {
      this.started = true;
      this.res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    }
    if (!this.res.write(`${JSON.stringify(data)}\n`)) await drained(this.res);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.res.destroyed) this.res.end();
  }
}
