// The server's compiler thread: one worker (compile-worker.ts) that turns answer specs into
// automata, one job at a time, in the order asked. Started on first use and unreferenced, so an
// idle one never keeps the process alive. Its stack is sized so that schemas nest about as deep
// there as they did on the main thread (700-1,000 levels of "items" before a RangeError, which the
// server answers with a 400), and its heap is bounded: a compilation that ran away ends the
// worker, not the server; the jobs it held fail and the next one starts a fresh worker.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { SpecialTokens } from './answer-grammar.js';
import { fromFailure, type Refusal } from './compile-failure.js';
import type { CompileJob, CompileReply } from './compile-worker.js';

/** What the compiler thread gives back: the automaton, or the error the compilation threw. */
export type ThreadResult = { data: Int32Array } | { error: Error; refusal?: Refusal };

/**
 * The worker's file: next to this module once compiled (dist/structured). Run from the sources
 * (the test runner loads src/*.ts), the compiled one in dist/, which `npm test` builds first;
 * undefined where neither exists, and then compilations stay on the calling thread.
 */
export function compileWorkerFile(): string | undefined {
  for (const rel of ['./compile-worker.js', '../../dist/structured/compile-worker.js']) {
    const file = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(file)) return file;
  }
  return undefined;
}

export class CompileThread {
  private worker?: Worker;
  /** Each waiting job's resolve, by id. */
  private readonly pending = new Map<number, (r: ThreadResult) => void>();
  private nextId = 1;

  constructor(private readonly file: string) {}

  /** Compiles `specJson` (JSON of [spec, thinking]) on the thread; never rejects (a failure comes back as `error`). */
  compile(specJson: string, tokens: SpecialTokens, deadlineMs?: number): Promise<ThreadResult> {
    return new Promise((resolve) => {
      const id = this.nextId++;
      const job: CompileJob = { id, specJson, tokens, deadlineMs };
      let worker: Worker;
      try {
        worker = this.started();
        worker.postMessage(job);
      } catch (err) {
        // (a worker that cannot start: its error is the answer)
        return resolve({ error: err instanceof Error ? err : new Error(String(err)) });
      }
      this.pending.set(id, resolve);
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
    // (A worker's default stack is 4 MB, the main thread's 984 KB; 2 MB here reach the depth the
    // main thread reached with the stack the server had already used below the compiler.)
    const w = new Worker(this.file, { resourceLimits: { stackSizeMb: 2, maxOldGenerationSizeMb: 2048 } });
    w.unref();
    w.on('message', (reply: CompileReply) => {
      const resolve = this.pending.get(reply.id);
      if (!resolve) return;
      this.pending.delete(reply.id);
      // Referenced only while a job is waiting, so an idle worker lets the process exit.
      if (this.pending.size === 0) w.unref();
      resolve('data' in reply ? { data: reply.data } : fromFailure(reply.failure));
    });
    const gone = (why: string) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      this.failAll(new Error(`the grammar compiler's thread stopped (${why}); send the request again`));
    };
    w.on('error', (err) => gone(err.message));
    w.on('exit', (code) => gone(`exit code ${code}`));
    this.worker = w;
    return w;
  }

  private failAll(error: Error): void {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const resolve of waiting) resolve({ error });
  }
}
