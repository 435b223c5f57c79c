// A bad GRPST_CPU_KERNELS is refused by the variable's name, with its value, the levels it takes,
// the ones this CPU runs and the fix, before the runtime is asked to load anything: the
// runtime's own refusal would read as a load failure whose fix points at the model folder. A
// stand-in runtime reports an AVX2 CPU (so an avx512 request is one this CPU cannot run) and,
// given a level it does not know, answers with the runtime's own words.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEngine, nativeOptions } from '../../src/engine/index.js';
import { GrpstError } from '../../src/util/errors.js';
import { checkpoint } from '../helpers/fixtures.js';

let tmp: string;
const saved = { addon: process.env.GRPST_NATIVE_ADDON, kernels: process.env.GRPST_CPU_KERNELS };

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-cpu-kernels-'));
  const addon = path.join(tmp, 'stand-in-runtime.cjs');
  fs.writeFileSync(
    addon,
    `exports.probe = () => ({ version: 'test', cpuKernels: ['avx2', 'scalar'], bestCpuKernels: 'avx2', cuda: false });
exports.createEngine = async (model, tensors, options) => {
  if (options.cpuKernels && !['amx', 'avx512', 'avx2', 'scalar'].includes(options.cpuKernels))
    throw new Error('unknown CPU kernel level "' + options.cpuKernels + '" (GRPST_CPU_KERNELS takes amx, avx512, avx2 or scalar)');
  throw new Error('the stand-in runtime loads nothing');
};
`,
  );
  process.env.GRPST_NATIVE_ADDON = addon;
});

afterAll(() => {
  for (const [key, value] of [['GRPST_NATIVE_ADDON', saved.addon], ['GRPST_CPU_KERNELS', saved.kernels]] as const) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

function refusal(value: string): GrpstError {
  process.env.GRPST_CPU_KERNELS = value;
  try {
    nativeOptions({});
  } catch (err) {
    expect(err).toBeInstanceOf(GrpstError);
    return err as GrpstError;
  } finally {
    delete process.env.GRPST_CPU_KERNELS;
  }
  throw new Error(`GRPST_CPU_KERNELS=${value} was accepted`);
}

describe('GRPST_CPU_KERNELS', () => {
  it('an unknown level names the variable, its value, the levels it takes and what this CPU runs', () => {
    const err = refusal('avx9000');
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe('GRPST_CPU_KERNELS is set to "avx9000", which is not a CPU kernel level: it takes amx, avx512, avx2 or scalar, and this CPU runs avx2 and scalar');
    expect(err.hint).toBe("unset GRPST_CPU_KERNELS to use this CPU's best level (avx2), or set it to avx2 or scalar");
  });

  it('a level this CPU cannot run says so, with the levels it can', () => {
    const err = refusal('avx512');
    expect(err.message).toMatch(/^GRPST_CPU_KERNELS is set to "avx512", a CPU kernel level this CPU cannot run: it runs avx2 and scalar/);
    expect(err.hint).toMatch(/^unset GRPST_CPU_KERNELS .* or set it to avx2 or scalar$/);
  });

  it('a level this CPU runs is passed on, and an unset or empty variable leaves the choice to the runtime', () => {
    for (const level of ['avx2', 'scalar']) {
      process.env.GRPST_CPU_KERNELS = level;
      expect(nativeOptions({}).cpuKernels).toBe(level);
    }
    process.env.GRPST_CPU_KERNELS = '';
    expect(nativeOptions({}).cpuKernels).toBeUndefined();
    delete process.env.GRPST_CPU_KERNELS;
    expect(nativeOptions({}).cpuKernels).toBeUndefined();
  });

  it('loading an engine reports the variable and its fix, not the model folder', async () => {
    process.env.GRPST_CPU_KERNELS = 'AVX2';
    const err = await loadEngine(checkpoint('tiny-a')).then(
      () => undefined,
      (e: unknown) => e,
    );
    delete process.env.GRPST_CPU_KERNELS;
    expect(err).toBeInstanceOf(GrpstError);
    expect((err as GrpstError).message).toContain('GRPST_CPU_KERNELS is set to "AVX2"');
    expect((err as GrpstError).hint).toMatch(/^unset GRPST_CPU_KERNELS/);
    expect((err as GrpstError).hint).not.toMatch(/model folder/);
  });
});
