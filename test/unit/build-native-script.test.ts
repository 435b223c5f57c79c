// scripts/build-native.mjs (what `npm install` runs): GRPST_CUDA in the environment reaches
// CMake as the GRPST_CUDA option, a bad value is refused with the fix, and an explicit
// --CDGRPST_CUDA argument wins. --dry-run prints the cmake-js command and builds nothing.
import { execa } from 'execa';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';

const script = path.join(repoRoot, 'scripts', 'build-native.mjs');
const run = (env: Record<string, string | undefined>, args: string[] = []) =>
  execa(process.execPath, [script, '--dry-run', ...args], { env: { ...process.env, GRPST_CUDA: undefined, ...env }, reject: false });

describe('build-native.mjs', () => {
  it('passes GRPST_CUDA on to CMake, refuses other values, and lets --CDGRPST_CUDA win', async () => {
    const plain = await run({});
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout).toMatch(/^cmake-js build -d .*native/m);
    expect(plain.stdout).not.toContain('GRPST_CUDA');
    for (const [given, passed] of [['off', 'OFF'], ['ON', 'ON'], [' auto ', 'AUTO']]) {
      const r = await run({ GRPST_CUDA: given });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toContain(`--CDGRPST_CUDA=${passed}`);
    }
    const bad = await run({ GRPST_CUDA: 'maybe' });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('GRPST_CUDA=maybe is not ON, OFF or AUTO');
    const explicit = await run({ GRPST_CUDA: 'ON' }, ['--CDGRPST_CUDA=OFF']);
    expect(explicit.stdout.match(/GRPST_CUDA=\w+/g)).toEqual(['GRPST_CUDA=OFF']);
  });
});
