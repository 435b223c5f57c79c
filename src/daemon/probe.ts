// What `ps` and `start` ask of a server: is its process alive, and what does /health say.
import fs from 'node:fs';
import { groupMembers, pidAlive } from './processes.js';
import { lifecyclePaths } from '../config/paths.js';
import { drainingSince, portFileOf, type ServerState } from './state.js';

export type ServerStatus = 'running' | 'starting' | 'loading' | 'draining' | 'unhealthy' | 'dead';

/** The address to reach a server bound to host (a wildcard bind is reached on loopback). */
export function probeHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export function healthUrl(host: string, port: number): string {
  return `http://${probeHost(host)}:${port}/health`;
}

export type HealthAnswer = 'ok' | 'loading' | 'auth' | 'error' | 'none';

export async function probeHealth(url: string, opts: { timeoutMs?: number; apiKey?: string } = {}): Promise<HealthAnswer> {
  try {
    // undici's request, not fetch: fetch refuses the ports browsers block (6000, 6666, ...).
    // Loaded here: `grpst ps` with nothing to probe stays light (test/e2e/cli-startup.test.ts).
    const { request } = await import('undici');
    const res = await request(url, {
      signal: AbortSignal.timeout(opts.timeoutMs ?? 2000),
      headers: opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {},
    });
    await res.body.dump().catch(() => undefined);
    const status = res.statusCode;
    if (status === 200) return 'ok';
    if (status === 503) return 'loading';
    if (status === 401 || status === 403) return 'auth';
    return 'error';
  } catch {
    return 'none';
  }
}

export interface ProbedServer {
  state: ServerState;
  status: ServerStatus;
  /** Processes of the group still alive although the server process is gone (stop cleans them). */
  strays: number[];
  /** When it began draining (SIGTERM, `grpst stop`), if it is. */
  drainingSince?: string;
}

export async function probeServer(state: ServerState, home?: string): Promise<ProbedServer> {
  if (!pidAlive(state.pid, state.procStart)) {
    return { state, status: 'dead', strays: groupMembers(state.pgid) };
  }
  const answer = await probeHealth(healthUrl(state.host, state.httpPort));
  // A draining server has closed its port: /health cannot answer, the daemon's marker does. Read
  // after the probe: the daemon writes it before closing the port, so a refused probe is never
  // taken for "unhealthy" when the drain began during it.
  const since = drainingSince(state.name, home);
  if (since) return { state, status: 'draining', strays: [], drainingSince: since };
  // Before it listens (reading its confs and tokenizer) a daemon has written no port file yet:
  // nothing answers, and that is a start under way, not a fault. Once it has listened, silence is.
  if (answer === 'none' && !fs.existsSync(portFileOf(lifecyclePaths(state.name, home)))) return { state, status: 'starting', strays: [] };
  const status: ServerStatus = answer === 'ok' || (answer === 'auth' && state.authHealth) ? 'running' : answer === 'loading' ? 'loading' : 'unhealthy';
  return { state, status, strays: [] };
}
