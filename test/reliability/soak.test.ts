// A CI-sized soak of the real daemon (grpst build, archive, start on the tiny model): 200
// concurrent streaming and non-streaming clients for GRPST_SOAK_SECONDS (default 30), every
// answer checked against its reference, then KV blocks, sequences and resident memory back to
// baseline, a burst past max_concurrency + max_queue answered with 429s, and the API key (given
// through GRPST_API_KEY) found in no log and no process listing. `npm run soak` is the long run.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../bench/soak-daemon.js';
import { formatReport, runSoak, soakProblems } from '../../bench/soak-run.js';
import { repoRoot } from '../helpers/fixtures.js';

const seconds = Number(process.env.GRPST_SOAK_SECONDS ?? 30);
const apiKey = `sk-rel-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
let daemon: Daemon;

beforeAll(async () => {
  daemon = await startDaemon({ name: 'soak', maxConcurrency: 32, maxQueue: 256, apiKey });
}, 600_000);

afterAll(async () => {
  if (!daemon) return;
  await daemon.stop(10);
  fs.rmSync(daemon.cli.home, { recursive: true, force: true });
  fs.rmSync(daemon.projectDir, { recursive: true, force: true });
});

describe('soak of the real daemon', () => {
  it(`200 concurrent clients for ${seconds} s: nothing failed or truncated, everything back to baseline, 429 past the queue`, async () => {
    const report = await runSoak({ url: daemon.url, apiKey, pid: daemon.pid, seconds, concurrency: 200, maxConcurrency: 32, maxQueue: 256 });
    console.log(formatReport(report));
    fs.mkdirSync(path.join(repoRoot, 'test-artifacts', 'reliability'), { recursive: true });
    fs.writeFileSync(path.join(repoRoot, 'test-artifacts', 'reliability', `soak-test-${seconds}s.json`), JSON.stringify(report, null, 1));
    expect(soakProblems(report)).toEqual([]);
    expect(report.requests).toBeGreaterThan(200);
    expect(report.streamed).toBeGreaterThan(50);
    expect(report.requests - report.streamed).toBeGreaterThan(50);
  }, (seconds + 240) * 1000);

  it('the API key is in no log, no process listing and no ps output; stop drains and exits cleanly', async () => {
    const listing = (await execa('ps', ['-eww', '-o', 'pid,args'])).stdout;
    expect(listing).toContain(String(daemon.pid));
    const ps = await daemon.cli.run(['ps']);
    const psJson = await daemon.cli.run(['ps', '--json']);
    expect(JSON.parse(psJson.stdout)[0]).toMatchObject({ name: 'soak', status: 'running' });
    // Wrong keys that contain the real one are refused and not echoed.
    const wrong = await fetch(`${daemon.url}/v1/models`, { headers: { authorization: `Bearer ${apiKey}-${apiKey}` } });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).not.toContain(apiKey);
    const stopped = await daemon.stop();
    expect(stopped.code, stopped.stderr).toBe(0);
    const log = fs.readFileSync(daemon.logFile, 'utf8');
    expect(log).toMatch(/SIGTERM: draining[\s\S]*drained; exiting/);
    const state = path.join(daemon.cli.home, '.run', 'soak.json');
    expect(fs.existsSync(state)).toBe(false);
    for (const text of [listing, ps.stdout, ps.stderr, psJson.stdout, log, stopped.stdout, stopped.stderr]) expect(text).not.toContain(apiKey);
  });
});
