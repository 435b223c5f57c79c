// `npm run soak [-- --seconds 60] [-- --concurrency 200]`: starts the real daemon on the tiny
// model (grpst build, archive, start), soaks it (bench/soak-run.ts), stops it with `grpst stop`
// (drain), and prints the figures docs/reliability.md quotes. Exit 1 when anything was lost.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../test/helpers/fixtures.js';
import { startDaemon } from './soak-daemon.js';
import { formatReport, runSoak, soakProblems } from './soak-run.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '200' },
    'max-concurrency': { type: 'string', default: '32' },
    'max-queue': { type: 'string', default: '256' },
  },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const maxConcurrency = Number(values['max-concurrency']);
const maxQueue = Number(values['max-queue']);
if (!(seconds > 0) || !(concurrency > 0)) throw new Error('--seconds and --concurrency take positive numbers');
if (concurrency > maxConcurrency + maxQueue) throw new Error(`--concurrency ${concurrency} is more than max_concurrency + max_queue (${maxConcurrency + maxQueue}): the soak itself would get 429s`);

const say = (line: string) => console.log(`[soak] ${line}`);
say('starting the daemon (grpst build once, archive, start)');
const apiKey = `sk-soak-${Math.random().toString(36).slice(2)}`;
const daemon = await startDaemon({ name: 'soak', maxConcurrency, maxQueue, apiKey });
say(`daemon ${daemon.name} pid ${daemon.pid} on ${daemon.url}`);
let exitCode = 1;
try {
  const report = await runSoak({ url: daemon.url, apiKey, pid: daemon.pid, seconds, concurrency, maxConcurrency, maxQueue, log: say });
  const stopped = await daemon.stop();
  const log = fs.readFileSync(daemon.logFile, 'utf8');
  const problems = soakProblems(report);
  if (stopped.code !== 0) problems.push(`grpst stop exited ${stopped.code}: ${stopped.stderr}`);
  if (!log.includes('drained; exiting')) problems.push('the server log does not show a clean drain');
  if (log.includes(apiKey)) problems.push('the API key appears in the server log');
  console.log(formatReport(report));
  const out = path.join(repoRoot, 'test-artifacts', 'reliability');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, `soak-${seconds}s.json`), JSON.stringify({ ...report, problems, date: new Date().toISOString() }, null, 1));
  if (problems.length > 0) console.log(`FAILED:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  else console.log('soak passed: nothing lost, everything returned to baseline');
  exitCode = problems.length > 0 ? 1 : 0;
} finally {
  await daemon.stop(10);
  fs.rmSync(daemon.cli.home, { recursive: true, force: true });
  fs.rmSync(daemon.projectDir, { recursive: true, force: true });
}
process.exit(exitCode);
