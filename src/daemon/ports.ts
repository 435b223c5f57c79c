// Port checks before a server starts: a taken port is refused with the fix, not discovered from
// a daemon that dies on EADDRINUSE.
import net from 'node:net';
import { badInput } from '../util/errors.js';
import { sleep } from './processes.js';

/** Resolves 'free' or the errno of the failed bind (EADDRINUSE, EACCES, EADDRNOTAVAIL...). */
export function tryBind(host: string, port: number): Promise<'free' | string> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'EUNKNOWN'));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve('free')));
  });
}

export async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** How often, and how far apart, a taken port that no grpst server holds is tried again (requireListenable). */
const kBusyRetries = 3;
const kBusyRetryMs = 100;

/** Where the host and the port are set, for a fix to name: a conf key or a command-line flag. */
export interface ListenSettings {
  host: string;
  port: string;
}

/**
 * Binds host:port for a moment and refuses, with the setting to change, what a server could not
 * listen on: a host that does not resolve or is no address of this machine, a privileged port,
 * a port taken (by a grpst server, named, when `ownerOf` finds one).
 */
export async function requireListenable(host: string, port: number, change: ListenSettings, ownerOf: (port: number) => { name: string; pid: number } | undefined = () => undefined): Promise<void> {
  // Port 0 too: the host must name an address of this machine.
  let result = await tryBind(host, port);
  // A port held by no grpst server is tried again a few times before it is called taken: another
  // start's (or serve's) own check holds it for a moment, and refusing then would name "another
  // program" for a port that is free, or about to be a grpst server's (named on a later try).
  for (let retry = 0; result === 'EADDRINUSE' && !ownerOf(port) && retry < kBusyRetries; retry++) {
    await sleep(kBusyRetryMs);
    result = await tryBind(host, port);
  }
  if (result === 'free') return;
  if (result === 'EADDRINUSE') {
    const owner = ownerOf(port);
    throw badInput(
      `port ${port} is taken${owner ? ` by grpst server ${owner.name} (pid ${owner.pid})` : ' by another program'}`,
      owner ? `stop it with \`grpst stop ${owner.name}\`, or change ${change.port} to a free port` : `change ${change.port} to a free port, or stop the program holding it`,
    );
  }
  const why: Record<string, string> = {
    ENOTFOUND: `${host} does not resolve to an address`,
    EAI_AGAIN: `${host} could not be resolved (no answer from DNS)`,
    EADDRNOTAVAIL: `${host} is not an address of this machine`,
  };
  throw badInput(
    `cannot listen on ${host}:${port} (${result}${why[result] ? `: ${why[result]}` : ''})`,
    result === 'EACCES' ? `ports below 1024 need privileges; change ${change.port} to one above 1023` : `change ${change.host} to an address of this machine: 0.0.0.0 (every interface), 127.0.0.1 (this machine only) or one of its own`,
  );
}
