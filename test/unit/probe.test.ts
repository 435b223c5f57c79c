// The health probe `grpst start` and `grpst ps` use, against a real listening socket: it must
// reach a server on any port, the ones browsers refuse (fetch's "bad ports") included, and the
// server conf (or --port) says when the chat page will not load on such a port.
import fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inferenceConfSchema } from '../../src/config/inference-schema.js';
import { loadDeployment, mapConfs } from '../../src/config/resolve.js';
import { serverConfSchema } from '../../src/config/server-schema.js';
import { healthUrl, probeHealth } from '../../src/daemon/probe.js';
import { tokenizerDir } from '../helpers/fixtures.js';

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

  it('with --port the port checked is the one the server listens on, and the note names the flag', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-probe-'));
    try {
      fs.mkdirSync(path.join(dir, 'engine'));
      fs.writeFileSync(path.join(dir, 'engine', 'engine.json'), '{}');
      fs.writeFileSync(path.join(dir, 'inference.yml'), `models:\n  - name: m\n    version: 1\n    inferer_args:\n      llm_style: qwen3\n      tokenizer_path: ${tokenizerDir}\n      gpt_model_path: ./engine\n`);
      fs.writeFileSync(path.join(dir, 'server.yml'), 'interface:\n  port: 6000\n');
      const load = (port: number) => loadDeployment({ inferenceConf: path.join(dir, 'inference.yml'), serverConf: path.join(dir, 'server.yml'), deployPath: dir, env: {}, listen: { port } });
      // The conf's blocked port is not used: nothing to say about it.
      const moved = load(9997);
      expect(moved.runtime.server.port).toBe(9997);
      expect(moved.warnings).toEqual([]);
      const blocked = load(6666);
      expect(blocked.runtime.server.port).toBe(6666);
      expect(blocked.warnings).toEqual([expect.stringMatching(/^command line: --port: 6666 is a port browsers refuse .*the chat page will not load there$/)]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
