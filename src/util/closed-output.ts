// A reader that goes away (`grpst run ... | head -1`, `grpst start ... 2>&1 | head -1`) makes the
// next write to stdout or stderr fail with EPIPE. Node ignores SIGPIPE, so without a listener that
// error is an unhandled 'error' event: a stack trace, exit 1, and no cleanup. Here it ends the
// command as SIGPIPE ends a Unix tool: quietly, exit 141 (128 + SIGPIPE), after the cleanups the
// running command registered (grpst start removes its staging folder and lock, as for Ctrl-C).
// A server keeps serving instead: its clients are not the reader of its log. That holds for any
// write error, not only EPIPE: a daemon's log on a full disk (ENOSPC, EDQUOT, EFBIG) or a failing
// one (EIO) loses those lines, and the listener keeps the stream open so logging resumes once
// there is room again; a thrown error here would end the server mid-request.

/** The exit status a shell reports for a process ended by SIGPIPE. */
export const closedOutputExitCode = 141;

const cleanups = new Set<() => void>();
let watching = false;
let closing = false;

/** Runs `cleanup` if the output closes before the returned function unregisters it. */
export function onOutputClosed(cleanup: () => void): () => void {
  cleanups.add(cleanup);
  return () => {
    cleanups.delete(cleanup);
  };
}

/**
 * Installs the EPIPE handling on process.stdout and process.stderr (once per process): 'exit'
 * ends the command, 'ignore' (a server) goes on with the lines lost, whatever the write error.
 */
export function handleClosedOutput(mode: 'exit' | 'ignore'): void {
  if (watching) return;
  watching = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (mode === 'ignore') return;
      if (err.code !== 'EPIPE') throw err;
      if (closing) return;
      closing = true;
      for (const cleanup of [...cleanups]) {
        try {
          cleanup();
        } catch {
          // The others must still run, and there is no stream left to report on.
        }
      }
      process.exit(closedOutputExitCode);
    });
  }
}
