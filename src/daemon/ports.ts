// Port checks before a server starts: a taken port is refused with the fix, not discovered from
// a daemon that dies on EADDRINUSE.
import net from 'node:net';

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
