// The compiler thread's body (compile-thread.ts starts it): a schema, grammar or tool list ->
// grammar rules -> automaton, the part of a compilation that takes time (a few ms for a small
// schema, 50-120 ms for 100 tools, up to the build deadline for the largest), so that the server's
// event loop goes on streaming other requests' tokens meanwhile. The automaton's Int32Array goes
// back without a copy; the native matcher is made from it on the server's thread (a few ms).
import { parentPort } from 'node:worker_threads';
import { withWrittenKeyOrder } from '../parse/ordered-json.js';
import { answerGrammar, type AnswerSpec, type AnswerThinking, type SpecialTokens } from './answer-grammar.js';
import { buildAutomaton } from './automaton.js';
import { toFailure, type CompileFailure } from './compile-failure.js';
import type { Grammar } from './grammar.js';

export interface CompileJob {
  id: number;
  /**
   * JSON of [spec, thinking] (the text the cache's key is made from), in the client's key order.
   * As text, not as an object: a structured clone of a schema nested thousands deep fails to
   * arrive in the worker with no error the sender sees, where JSON.parse fails here, where it can
   * be answered; and a clone would list integer-like keys first.
   */
  specJson: string;
  tokens: SpecialTokens;
  deadlineMs?: number;
}

export type CompileReply = { id: number; data: Int32Array } | { id: number; failure: CompileFailure };

const port = parentPort;
port?.on('message', (job: CompileJob) => {
  let spec: AnswerSpec | undefined;
  let rules: Grammar | undefined;
  try {
    let thinking: AnswerThinking;
    // In the key order written (JSON.stringify kept the client's): properties "1" and "b" are
    // written by the grammar in the order the client listed them, as vLLM writes them.
    [spec, thinking] = withWrittenKeyOrder(job.specJson, JSON.parse(job.specJson)) as [AnswerSpec, AnswerThinking];
    rules = answerGrammar(spec, thinking, job.tokens);
    const { data } = buildAutomaton(rules, { deadlineMs: job.deadlineMs });
    const reply: CompileReply = { id: job.id, data };
    port.postMessage(reply, [data.buffer as ArrayBuffer]);
  } catch (err) {
    const reply: CompileReply = { id: job.id, failure: toFailure(err, rules, spec) };
    port.postMessage(reply);
  }
});
