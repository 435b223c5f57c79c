// One worker thread that takes jobs in the order asked and answers each by its id: the server's
// grammar compiler and its tokenizer for long texts run on such threads, so that the event loop
// goes on streaming other requests' tokens meanwhile. Started on first use and referenced only
// while a job waits, so an idle one never keeps the process alive. A worker that stops (an error,
// its heap limit) fails the jobs it held with an error that names it; the next job starts a
// fresh one.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';

/**
 * A worker module's file: next to the calling module once compiled (dist/<folder>). Run from the
 * sources (the test runner loads src/*.ts), the compiled one in dist/, which `npm test` builds
 * first; undefined where neither exists (a bundle without dist/), and callers then do the work
 * on their own thread.
 */
export function workerFile(callerUrl: string, folder: string, name: string): string | undefined {
  for (const rel of [`./${name}`, `../../dist/${folder}/${name}`]) {
    const file = fileURLToPath(new URL(rel, callerUrl));
    if (existsSync(file)) return file;
  }
  return undefined;
}

export interface JobThreadOptions {
  /** The worker module (workerFile). */
  file: string;
  /** What the thread is called in the error its waiting jobs fail with ("the tokenizer's thread"). */
  name: string;
  workerData?: unknown;
  resourceLimits?: ResourceLimits;
}

/** Every job and reply carries the id the thread gave the job. */
export interface Numbered {
  id: number;
}

export class JobThread<Job extends Numbered, Reply extends Numbered> {
  private worker?: Worker;
  /** Each waiting job's settle functions, by id. */
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 1;

  constructor(private readonly opts: JobThreadOptions) {}

  /** Sends `job` (given its id); rejects when the worker cannot start or stops before it answers. */
  run(job: (id: number) => Job): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      let worker: Worker;
      try {
        worker = this.started();
        worker.postMessage(job(id));
      } catch (err) {
        return reject(err instanceof Error ? err : new Error(String(err)));
      }
      this.pending.set(id, { resolve, reject });
      worker.ref();
    });
  }

  /** Ends the worker; jobs still waiting fail. */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.failAll(new Error('the server is shutting down'));
    if (w) await w.terminate();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.opts.file, { workerData: this.opts.workerData, resourceLimits: this.opts.resourceLimits });
    w.unref();
    w.on('message', (reply: Reply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) w.unref();
      waiting.resolve(reply);
    });
    const gone = (why: string) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      this.failAll(new Error(`${this.opts.name} stopped (${why}); send the request again`));
    };
    w.on('error', (err) => gone(err.message));
    w.on('exit', (code) => gone(`exit code ${code}`));
    this.worker = w;
    return w;
  }

  private failAll(error: Error): void {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const { reject } of waiting) reject(error);
  }
}
