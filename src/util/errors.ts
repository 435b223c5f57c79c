// One error type for everything a user can get wrong or the machine can lack. The CLI prints
// `message` and `hint` and exits with `exitCode`; the server maps `httpStatus` onto OpenAI's
// error envelope. Exit codes are distinct so CI pipelines can tell failures apart.

export const ExitCode = {
  ok: 0,
  /** What the user named (a server) does not exist. */
  notFound: 1,
  /** A flag, file or conf the user gave is wrong. */
  badInput: 2,
  /** Something that must be installed (compiler, python, TensorRT-LLM, the native addon) is missing. */
  missingTool: 3,
  /** The work itself failed (a build step, a daemon that died while starting). */
  failed: 4,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class GrpstError extends Error {
  readonly exitCode: ExitCodeValue;
  /** How to fix it, in one sentence. */
  readonly hint?: string;
  constructor(message: string, opts: { hint?: string; exitCode?: ExitCodeValue; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GrpstError';
    this.exitCode = opts.exitCode ?? ExitCode.badInput;
    this.hint = opts.hint;
  }
}

export function badInput(message: string, hint?: string): GrpstError {
  return new GrpstError(message, { hint, exitCode: ExitCode.badInput });
}

export function notFound(message: string, hint?: string): GrpstError {
  return new GrpstError(message, { hint, exitCode: ExitCode.notFound });
}

export function missingTool(message: string, hint?: string): GrpstError {
  return new GrpstError(message, { hint, exitCode: ExitCode.missingTool });
}

export function failed(message: string, hint?: string, cause?: unknown): GrpstError {
  return new GrpstError(message, { hint, exitCode: ExitCode.failed, cause });
}

/**
 * A file this user may not read (a checkpoint downloaded by another user, mode 600) as bad input
 * naming it and the fix; undefined for any other error, which keeps its own message. Without it
 * the read's failure reads as "not found" or "not valid JSON".
 */
export function unreadableFile(e: unknown, file: string): GrpstError | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'EACCES' && code !== 'EPERM') return undefined;
  return badInput(`cannot read ${file} (${code}): this user may not`, `make it readable (chmod a+r ${file}), or run as the user that owns it`);
}

export function errorText(err: unknown): string {
  if (err instanceof GrpstError) return err.hint ? `${err.message}\n  fix: ${err.hint}` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
