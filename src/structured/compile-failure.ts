// What a failed compilation becomes. A refusal the client can fix (a SchemaError naming the part
// of the schema, and the tool whose parameters it is in) is told apart from a bug, and crosses
// from the compiler thread (compile-worker.ts) to the server as plain data, since errors lose
// their classes in a message between threads.
import { ToolSchemaError, type AnswerSpec } from './answer-grammar.js';
import { GrammarTooLarge } from './automaton.js';
import type { Grammar } from './grammar.js';
import { SchemaError } from './schema-errors.js';

export interface Refusal {
  error: SchemaError;
  /** false for a deadline missed: the same schema may build on a quieter machine, so it is not cached. */
  cacheable: boolean;
}

/** Refusals a client can fix (schema features, size, unsatisfiable schemas) as SchemaErrors. */
export function refusalOf(err: unknown, rules: Grammar | undefined, spec: AnswerSpec | undefined): Refusal | undefined {
  if (err instanceof SchemaError) return { error: err, cacheable: true };
  if (err instanceof GrammarTooLarge) {
    const where = (err.rule !== undefined && rules?.where?.get(err.rule)) || '#';
    const refused = new SchemaError(`this part of the schema is too large to enforce: ${err.reason}`, where);
    // Rules of tool parameters are named t<index>:...; say which tool.
    const tool = spec?.kind === 'tool_calls' ? /^t(\d+):/.exec(err.rule ?? '') : null;
    const error = tool && spec?.kind === 'tool_calls' ? new ToolSchemaError(spec.tools[Number(tool[1])].name, refused) : refused;
    return { error, cacheable: !err.timedOut };
  }
  if (err instanceof Error && err.message === 'no output satisfies the grammar')
    return { error: new SchemaError('no JSON value satisfies the schema within the supported limits (e.g. recursion deeper than 6 levels is required)', '#'), cacheable: true };
  return undefined;
}

/** A failure as a message between threads can carry it. */
export type CompileFailure =
  | { kind: 'refused'; reason: string; path: string; tool?: string; cacheable: boolean }
  /** Recursion deeper than the stack: the server answers it with a 400 naming the field. */
  | { kind: 'too_deep'; message: string }
  | { kind: 'bug'; message: string; stack?: string };

export function toFailure(err: unknown, rules: Grammar | undefined, spec: AnswerSpec | undefined): CompileFailure {
  const refused = refusalOf(err, rules, spec);
  if (refused) {
    const { error, cacheable } = refused;
    if (error instanceof ToolSchemaError) return { kind: 'refused', reason: error.toolReason, path: error.path, tool: error.tool, cacheable };
    return { kind: 'refused', reason: error.reason, path: error.path, cacheable };
  }
  if (err instanceof RangeError) return { kind: 'too_deep', message: err.message };
  return { kind: 'bug', message: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined };
}

/** The error a failure stands for, as the compiling thread threw it. */
export function fromFailure(f: CompileFailure): { error: Error; refusal?: Refusal } {
  if (f.kind === 'refused') {
    const cause = new SchemaError(f.reason, f.path);
    const error = f.tool !== undefined ? new ToolSchemaError(f.tool, cause) : cause;
    return { error, refusal: { error, cacheable: f.cacheable } };
  }
  if (f.kind === 'too_deep') return { error: new RangeError(f.message) };
  const error = new Error(`compiling the answer's grammar failed: ${f.message}`);
  if (f.stack) error.stack = f.stack;
  return { error };
}
