// npm run bench:pull — `grpst pull` against huggingface_hub's snapshot_download (the downloader
// of transformers and vLLM, client/python/requirements-hub.txt) on the same repository, served by
// the Hub stand-in of the tests (test/helpers/hub-standin.ts) over loopback, in alternating rounds
// of the same run. Loopback leaves no network in the way: what is measured is each client's own
// cost per byte (HTTP, writing, checking the sha256 of every weight file) on this machine. The
// ceiling beside them: the same bytes read from the stand-in into nothing.
//
//   npm run bench:pull [-- --shards 4 --shard-mb 256 --rounds 3 --json]
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { cliArgv } from '../test/helpers/grpst-cli.js';
import { checkpoint, repoRoot } from '../test/helpers/fixtures.js';
import { repoFromFiles, startHubStandin } from '../test/helpers/hub-standin.js';
import { hostPython, pythonVenv } from '../test/helpers/python-venv.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    shards: { type: 'string', default: '4' },
    'shard-mb': { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const shards = Number(args.shards);
const shardBytes = Number(args['shard-mb']) * 2 ** 20;
const rounds = Number(args.rounds);

// A checkpoint's small files from the tiny fixture, and random shards of the asked size.
const files: Record<string, Buffer> = {};
const tiny = checkpoint('tiny-a');
for (const name of readdirSync(tiny)) if (!name.endsWith('.safetensors') && name !== 'weights.sha256') files[name] = readFileSync(join(tiny, name));
for (let i = 0; i < shards; i++) files[`model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`] = randomFillSync(Buffer.alloc(shardBytes));
const totalBytes = Object.values(files).reduce((s, b) => s + b.length, 0);
const hub = await startHubStandin({ 'bench/random': repoFromFiles(files, `bench-${shards}-${shardBytes}`) });
const venv = await pythonVenv(join(repoRoot, 'client', 'python', 'requirements-hub.txt'), await hostPython());
const work = mkdtempSync(join(tmpdir(), 'grpst-bench-pull-'));
const env = { HF_ENDPOINT: hub.endpoint, HF_TOKEN: '', HF_HUB_OFFLINE: '', HF_HUB_DISABLE_TELEMETRY: '1', NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' };

async function timed(run: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await run();
  return (performance.now() - t0) / 1000;
}

/** The stand-in's bytes read over HTTP and thrown away: what loopback and the server allow. */
async function ceiling(): Promise<void> {
  for (const bytes of Object.values(files)) {
    const url = bytes.length > 1e6 ? `${hub.cdn}/blobs/${createHash('sha256').update(bytes).digest('hex')}` : undefined;
    if (!url) continue;
    const res = await fetch(url);
    for await (const _chunk of res.body!) void _chunk;
  }
}

async function grpstPull(home: string): Promise<void> {
  const r = await execa(process.execPath, [...cliArgv, 'pull', 'bench/random'], { env: { ...env, HF_HOME: home }, reject: false });
  if (r.exitCode !== 0) throw new Error(`grpst pull failed:\n${r.stderr}`);
}

async function hfPull(home: string): Promise<void> {
  const code = 'import sys; from huggingface_hub import snapshot_download; snapshot_download("bench/random", cache_dir=sys.argv[1])';
  const r = await execa(venv.python, ['-c', code, join(home, 'hub')], { env: { ...env, HF_HOME: home }, reject: false });
  if (r.exitCode !== 0) throw new Error(`snapshot_download failed:\n${r.stderr}`);
}

const times = { grpst: [] as number[], hf: [] as number[], ceiling: [] as number[] };
for (let round = 0; round < rounds; round++) {
  // Alternating order: drift on a shared machine falls on both.
  const order = round % 2 === 0 ? (['grpst', 'hf'] as const) : (['hf', 'grpst'] as const);
  times.ceiling.push(await timed(ceiling));
  for (const who of order) {
    const home = join(work, `${who}-${round}`);
    times[who].push(await timed(() => (who === 'grpst' ? grpstPull(home) : hfPull(home))));
    rmSync(home, { recursive: true, force: true });
  }
}
await hub.close();
rmSync(work, { recursive: true, force: true });

const best = (xs: number[]) => Math.min(...xs);
const mbps = (s: number, bytes = totalBytes) => bytes / 2 ** 20 / s;
const weightBytes = shards * shardBytes;
const result = {
  machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores`,
  repository: { files: Object.keys(files).length, bytes: totalBytes },
  rounds,
  ceiling_mb_s: mbps(best(times.ceiling), weightBytes),
  grpst: { best_s: best(times.grpst), mb_s: mbps(best(times.grpst)) },
  huggingface_hub: { version: '2.4.0', best_s: best(times.hf), mb_s: mbps(best(times.hf)) },
  grpst_over_huggingface_hub: best(times.hf) / best(times.grpst),
  all_s: times,
};
if (args.json) {
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} else {
  process.stdout.write(
    [
      `pull of ${result.repository.files} files, ${(totalBytes / 2 ** 20).toFixed(0)} MiB over loopback (${result.machine}), best of ${rounds}:`,
      `  loopback read ceiling        ${result.ceiling_mb_s.toFixed(0)} MiB/s`,
      `  grpst pull                   ${result.grpst.mb_s.toFixed(0)} MiB/s  (${result.grpst.best_s.toFixed(2)} s)`,
      `  huggingface_hub 2.4.0        ${result.huggingface_hub.mb_s.toFixed(0)} MiB/s  (${result.huggingface_hub.best_s.toFixed(2)} s)`,
      `  grpst / huggingface_hub      ${result.grpst_over_huggingface_hub.toFixed(2)}x (speed)`,
      '',
    ].join('\n'),
  );
}
