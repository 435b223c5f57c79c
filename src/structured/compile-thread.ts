// The server's compiler thread: one worker (compile-worker.ts) that turns answer specs into
// automata, one job at a time, in the order asked (a JobThread). Its stack is sized so that
// schemas nest about as deep there as they did on the main thread (700-1,000 levels of "items"
// before a RangeError, which the server answers with a 400), and its heap is bounded: a
// compilation that ran away ends the worker, not the server; the jobs it held fail and the next
// one starts a fresh worker.
import { JobThread, workerFile } from '../util/job-thread.js';
import type { SpecialTokens } from './answer-grammar.js';
import { fromFailure, type Refusal } from './compile-failure.js';
import type { CompileJob, CompileReply } from './compile-worker.js';

/** What the compiler thread gives back: the automaton, or the error the compilation threw. */
export type ThreadResult = { data: Int32Array } | { error: Error; refusal?: Refusal };

/** The worker's file (see workerFile); undefined where there is none, and compilations stay on the calling thread. */
export function compileWorkerFile(): string | undefined {
  return workerFile(import.meta.url, 'structured', 'compile-worker.js');
}

export class CompileThread {
  private readonly thread: JobThread<CompileJob, CompileReply>;

  constructor(file: string) {
    // (A worker's default stack is 4 MB, the main thread's 984 KB; 2 MB here reach the depth the
    // main thread reached with the stack the server had already used below the compiler.)
    this.thread = new JobThread({ file, name: "the grammar compiler's thread", resourceLimits: { stackSizeMb: 2, maxOldGenerationSizeMb: 2048 } });
  }

  /** Compiles `specJson` (JSON of [spec, thinking]) on the thread; never rejects (a failure comes back as `error`). */
  compile(specJson: string, tokens: SpecialTokens, deadlineMs?: number): Promise<ThreadResult> {
    return this.thread.run((id) => ({ id, specJson, tokens, deadlineMs })).then(
      (reply): ThreadResult => ('data' in reply ? { data: reply.data } : fromFailure(reply.failure)),
      (error: Error): ThreadResult => ({ error }),
    );
  }

  /** Ends the worker; jobs still waiting fail. */
  close(): Promise<void> {
    return this.thread.close();
  }
}
