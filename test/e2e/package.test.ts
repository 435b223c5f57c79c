// The npm package (`npm pack`, then `npm install -g ./grpst-VERSION.tgz`): it holds what the CLI
// and the native build need, and nothing of the repository's tests, benchmarks or docs. The
// package is unpacked and run as installed: its own bin/, dist/, data/ and web/, the repository's
// node_modules and native binary beside it (installing it for real downloads the dependencies and
// compiles the runtime, minutes on CI's two cores; `npm ci` already runs the same install script),
// and its native sources configured by cmake-js as its install script does.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
let work: string;
let pkg: string;
let files: string[];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'grpst-package-'));
  // --ignore-scripts: `prepare` (tsc) would rewrite the dist/ the other test files are running;
  // the package's dist/ is compiled below, from the same sources, into the unpacked copy instead.
  const packed = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: repoRoot });
  const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  files = info.files.map((f) => f.path);
  execFileSync('tar', ['-xzf', join(work, info.filename), '-C', work]);
  pkg = join(work, 'package');
  await execa(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.json'), '--outDir', join(pkg, 'dist')]);
  symlinkSync(join(repoRoot, 'node_modules'), join(pkg, 'node_modules'), 'dir');
  mkdirSync(join(pkg, 'native', 'build', 'Release'), { recursive: true });
  symlinkSync(join(repoRoot, 'native', 'build', 'Release', 'grpst_native.node'), join(pkg, 'native', 'build', 'Release', 'grpst_native.node'));
}, 120_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the npm package', () => {
  it('holds the CLI, the native sources with their build script, and the shipped data; no tests, benchmarks or docs', () => {
    for (const f of ['package.json', 'README.md', 'bin/grpst.js', 'dist/cli/main.js', 'dist/engine/addon.js', 'scripts/build-native.mjs',
      'native/CMakeLists.txt', 'native/include/grpst/engine.h', 'native/src/runtime/scheduler.cpp', 'native/src/kernels/cuda/cuda.cmake',
      'data/calibration.txt', 'data/heldout.txt', 'web/index.html', 'conf/inference_tiny.yml', 'recipes/qwen3-8b-int4-awq.yml']) {
      expect(files, f).toContain(f);
    }
    const outside = files.filter((f) => /^(test|bench|docs|client|\.cache|\.ci|src)\//.test(f) || f.startsWith('native/build/') || f.startsWith('node_modules/'));
    expect(outside).toEqual([]);
  });

  it('its native sources configure as its install script builds them (cmake-js; a missing source fails here)', async () => {
    const cmakeJs = join(repoRoot, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
    const r = await execa(process.execPath, [cmakeJs, 'configure', '-d', join(pkg, 'native'), '-O', join(work, 'native-configure'), '--CDGRPST_CUDA=OFF'], { reject: false });
    expect(r.exitCode, r.stderr || r.stdout).toBe(0);
    expect(existsSync(join(work, 'native-configure', 'Makefile')) || existsSync(join(work, 'native-configure', 'build.ninja'))).toBe(true);
  }, 120_000);

  it('runs from where it is unpacked: --version, a build whose accuracy report reads the shipped held-out text, and a run of the engine', async () => {
    const grpst = (args: string[]) => execa(process.execPath, [join(pkg, 'bin', 'grpst.js'), ...args], { cwd: work, reject: false, env: { ...process.env, GRPST_HOME: join(work, 'home') } });
    const v = await grpst(['--version']);
    expect(v.exitCode, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe(version);
    const engine = join(work, 'engine');
    const built = await grpst(['build', '--model_dir', checkpoint('tiny-a'), '--output_dir', engine, '--qformat', 'int8_wo']);
    expect(built.exitCode, built.stderr).toBe(0);
    expect(built.stderr + built.stdout).toMatch(/top-1 agreement/);
    const ran = await grpst(['run', '--engine_dir', engine, '--input_text', 'hello', '--max_output_len', '4']);
    expect(ran.exitCode, ran.stderr).toBe(0);
    expect(ran.stdout + ran.stderr).toContain('output tokens: 4');
  }, 180_000);
});
