// The health probe `grpst start` and `grpst ps` use, against a real listening socket: it must
// reach a server on any port, the ones browsers refuse (fetch's "bad ports") included, and the
// server conf says when the chat page will not load on such a port.
import { createServer, type Server } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { inferenceConfSchema } from '../../src/config/inference-schema.js';
import { mapConfs } from '../../src/config/resolve.js';
import { serverConfSchema } from '../../src/config/server-schema.js';
import { healthUrl, probeHealth } from '../../src/daemon/probe.js';

const servers: Server[] = [];
afterAll(() => servers.forEach((s) => s.close()));

/** A /health server on the first of `ports` that binds (status as given); the port it got. */
async function healthServer(ports: number[], status: number): Promise<number> {
  for (const port of ports) {
    const s = createServer((_, res) => res.writeHead(status).end('{}'));
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      servers.push(s);
      return (s.address() as { port: number }).port;
    }
  }
  throw new Error(`none of ${ports} could be bound`);
}

describe('health probe', () => {
  it('reaches a server on a port fetch() refuses, and reads its status', async () => {
    const bad = await healthServer([6666, 6665, 6667, 6668, 6669, 10080], 200);
    await expect(fetch(healthUrl('0.0.0.0', bad)).then(() => 'reached', () => 'refused')).resolves.toBe('refused');
    expect(await probeHealth(healthUrl('0.0.0.0', bad))).toBe('ok');
    const loading = await healthServer([0], 503);
    expect(await probeHealth(healthUrl('127.0.0.1', loading))).toBe('loading');
    expect(await probeHealth(healthUrl('127.0.0.1', 1))).toBe('none');
  });

  it('a server conf on such a port gets a note that the chat page will not load there', () => {
    const inference = inferenceConfSchema.parse({ models: [{ name: 'm', version: '1', inferer_args: { llm_style: 'qwen3', tokenizer_path: 't', gpt_model_path: 'e' } }] });
    const notes = (port: number) => mapConfs(inference, serverConfSchema.parse({ interface: { port } }), {}).notes.map((n) => n.text);
    expect(notes(6000)).toEqual([expect.stringMatching(/6000 is a port browsers refuse .*the chat page will not load there/)]);
    expect(notes(9997)).toEqual([]);
  });
});
