// A reader that goes away (`grpst run ... | head -1`, `grpst start ... 2>&1 | head -1`) makes the
// next write to stdout or stderr fail with EPIPE. Node ignores SIGPIPE, so without a listener that
// error is an unhandled 'error' event: a stack trace, exit 1, and no cleanup. Here it ends the
// command as SIGPIPE ends a Unix tool: quietly, exit 141 (128 + SIGPIPE), after the cleanups the
// running command registered (grpst start removes its staging folder and lock, as for Ctrl-C).
// A server in the foreground keeps serving instead: its clients are not the reader of its log.

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
 * ends the command, 'ignore' goes on with the lines lost.
 */
export function handleClosedOutput(mode: 'exit' | 'ignore'): void {
  if (watching) return;
  watching = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      if (closing || mode === 'ignore') return;
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
