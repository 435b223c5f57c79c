// Writes test/gpu/kv-scales.json: the per-layer KV cache scales `grpst build --kv_cache_dtype`
// calibrates for the tiny fixtures (engine.json kv_cache.scales, [k, v] per layer). The GPU
// parity checks load the fixture checkpoints with these scales (test/gpu/kv-checks.ts): the GPU
// machine has no build pipeline to calibrate with, and the scales are a pure function of the
// fixtures, so they travel as this small file.
//   npx tsx scripts/gpu/kv-scales.ts
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCli } from '../../test/helpers/grpst-cli.js';
import { checkpoint, repoRoot, type CheckpointName } from '../../test/helpers/fixtures.js';

const cli = makeCli();
const work = mkdtempSync(join(tmpdir(), 'grpst-kv-scales-'));
const out: Record<string, Record<string, [number, number][]>> = {};
try {
  for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
    out[name] = {};
    for (const kv of ['fp8', 'int8']) {
      const dir = join(work, `${name}-${kv}`);
      const r = await cli.run(['build', '--model_dir', checkpoint(name), '--output_dir', dir, '--kv_cache_dtype', kv]);
      if (r.code !== 0) throw new Error(`grpst build ${name} --kv_cache_dtype ${kv} failed (${r.code}): ${r.stderr}`);
      const manifest = JSON.parse(readFileSync(join(dir, 'engine.json'), 'utf8')) as { kv_cache?: { dtype: string; scales?: [number, number][] } };
      if (manifest.kv_cache?.dtype !== kv || !manifest.kv_cache.scales) throw new Error(`${dir}/engine.json records no ${kv} scales`);
      out[name][kv] = manifest.kv_cache.scales;
      rmSync(dir, { recursive: true, force: true });
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
  rmSync(cli.home, { recursive: true, force: true });
}
const file = join(repoRoot, 'test', 'gpu', 'kv-scales.json');
// One [k, v] pair per line: a layer's scales read together.
const models = Object.entries(out).map(([name, kinds]) => {
  const body = Object.entries(kinds).map(([kv, pairs]) => `  "${kv}": [\n${pairs.map((p) => `   ${JSON.stringify(p)}`).join(',\n')}\n  ]`);
  return ` "${name}": {\n${body.join(',\n')}\n }`;
});
writeFileSync(file, `{\n${models.join(',\n')}\n}\n`);
console.log(`wrote ${file}`);
