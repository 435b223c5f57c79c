// A real `grpst serve` process on port 0 for tests: started, waited for until its model is ready,
// its address read from the "listening on" line, its log kept, stopped with SIGTERM.
import { execa, type ResultPromise } from 'execa';
import { cliArgv, drainGraceMs, type Cli } from './grpst-cli.js';

export interface ForegroundServer {
  url: string;
  process: ResultPromise<{ reject: false; all: true }>;
  /** Everything the server printed so far. */
  output(): string;
  /** SIGTERM, then its exit. */
  stop(): Promise<void>;
}

/**
 * `grpst serve ARGS --host 127.0.0.1 --port 0` without an API key, run through `prefix` where
 * given (a command that changes its limits, e.g. `sh -c 'ulimit -l 0 && exec "$@"' sh`); ready
 * within 60 s or it throws with the log.
 */
export async function serveForeground(cli: Cli, args: string[], cwd: string, prefix: string[] = []): Promise<ForegroundServer> {
  const argv = [...prefix, process.execPath, ...cliArgv, 'serve', ...args, '--host', '127.0.0.1', '--port', '0'];
  const child = execa(argv[0], argv.slice(1), {
    env: { ...cli.env, GRPST_API_KEY: undefined },
    cwd,
    reject: false,
    all: true,
    forceKillAfterDelay: drainGraceMs,
  }) as ResultPromise<{ reject: false; all: true }>;
  let output = '';
  child.all!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 60_000;
  while (!/ready \(/.test(output)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`server did not get ready:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // Port 0: the log's "listening on" line says which port was bound.
  const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1];
  return {
    url,
    process: child,
    output: () => output,
    async stop() {
      child.kill('SIGTERM');
      await child;
    },
  };
}
