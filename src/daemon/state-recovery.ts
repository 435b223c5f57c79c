// A state file that no longer parses (edited by hand, a full disk) must not hide a running
// server: `ps` would not list it, `stop` would not find it, and `start` would launch a second one
// beside it. The daemon's own command line says everything stop and ps need, so the state is
// rebuilt from the process the pid file names, once /proc shows it is this name's daemon.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { pidAlive, procArgv, procStartTime } from './processes.js';
import type { ServerState } from './state.js';

/** procStart of a pid that could not be tied to this name: never equal to a real start time, so the pid counts as gone. */
const unverified = 'unverified';

/** undefined when there is no pid file either: then the file was never a server's state. */
export function recoverState(name: string, files: { pid: string; port: string; deploy: string }, why: string): ServerState | undefined {
  if (!fs.existsSync(files.pid)) return undefined;
  const pid = Number(readText(files.pid));
  const argv = Number.isInteger(pid) && pid > 1 && pidAlive(pid) ? procArgv(pid) : undefined;
  const arg = (flag: string) => {
    const i = argv?.indexOf(flag) ?? -1;
    return i >= 0 ? argv![i + 1] : undefined;
  };
  const ours = argv !== undefined && argv.includes('serve') && arg('--port_file') === files.port;
  return {
    name,
    // A pid that cannot be read stays -1: no process group is ever signalled for it.
    pid: Number.isInteger(pid) && pid > 1 ? pid : -1,
    pgid: Number.isInteger(pid) && pid > 1 ? pid : -1,
    procStart: ours ? procStartTime(pid) : unverified,
    deployPath: arg('--deploy_path') ?? files.deploy,
    host: hostOf(arg('--server_conf')),
    httpPort: Number(readText(files.port)) || 0,
    backend: 'native',
    logFile: arg('--log_file') ?? '',
    inferenceConf: arg('--inference_conf') ?? '',
    serverConf: arg('--server_conf'),
    startedAt: '',
    authHealth: false,
    unreadable: why,
  };
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * interface.host of the server conf the daemon runs (where ps reaches it); 127.0.0.1 when it
 * cannot be read. The YAML parser loads only here: `grpst ps` stays light otherwise
 * (test/e2e/cli-startup.test.ts).
 */
function hostOf(serverConf: string | undefined): string {
  if (!serverConf) return '127.0.0.1';
  try {
    if (fs.statSync(serverConf).size > 1024 * 1024) return '127.0.0.1';
    const { parse } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
    const host = (parse(fs.readFileSync(serverConf, 'utf8'), { maxAliasCount: 64 }) as { interface?: { host?: unknown } } | null)?.interface?.host;
    return typeof host === 'string' && host !== '' ? host : '127.0.0.1';
  } catch {
    return '127.0.0.1';
  }
}
