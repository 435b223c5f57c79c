// The port check before a server starts (src/daemon/ports.ts requireListenable): a port held for
// a moment (another start's own check) is not refused, one held throughout is, naming its holder.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { requireListenable } from '../../src/daemon/ports.js';

const change = { host: 'interface.host', port: 'interface.port' };
const holders: net.Server[] = [];
afterEach(async () => {
  await Promise.all(holders.splice(0).map((h) => new Promise((resolve) => h.close(resolve))));
});

async function hold(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

describe('requireListenable', () => {
  it('lets a port through that another check held for a moment', async () => {
    const { server, port } = await hold();
    // released before the first retry (timers fire in order: 20 ms before the check's 100 ms)
    setTimeout(() => server.close(), 20);
    await expect(requireListenable('127.0.0.1', port, change)).resolves.toBeUndefined();
  });

  it('refuses a port held throughout, naming another program or the grpst server that holds it', async () => {
    const { server, port } = await hold();
    holders.push(server);
    await expect(requireListenable('127.0.0.1', port, change)).rejects.toThrow(`port ${port} is taken by another program`);
    const owner = { name: 'qwen3', pid: 1234 };
    await expect(requireListenable('127.0.0.1', port, change, () => owner)).rejects.toThrow(`port ${port} is taken by grpst server qwen3 (pid 1234)`);
  });
});
