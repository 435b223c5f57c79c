// The native build plan over every source kind, format, KV cache and reference, without running a
// build: the steps docs/build.md describes, in order, and a dry run that says the same thing in
// its numbered lines, its JSON steps and the command it prints. test/e2e/build-plan.test.ts checks
// a spread of these against real builds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dryRunPlan } from '../../src/build/index.js';
import { planNativeBuild } from '../../src/build/native/plan.js';
import { openSource } from '../../src/build/native/source.js';
import { kvCacheDtypes, qformats, resolveSettings, type BuildSettingsInput } from '../../src/build/options.js';
import { checkpoint } from '../helpers/fixtures.js';
import { fp8Checkpoint } from '../helpers/fp8-checkpoint.js';
import { awqCheckpoint } from '../e2e/build-helpers.js';

type Source = 'bf16' | 'awq' | 'fp8';
const dirs = {} as Record<Source | 'reference', string>;
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'grpst-build-plan-unit-'));
  dirs.bf16 = checkpoint('tiny-b');
  dirs.awq = awqCheckpoint('tiny-a', 32);
  dirs.fp8 = fp8Checkpoint();
  dirs.reference = checkpoint('tiny-b');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The steps as docs/build.md describes them, written out independently of plan.ts. */
function expectedSteps(source: Source, qformat: string, kv: string, reference: boolean): string[] {
  const weightsCalibrated = source !== 'awq' && ['int4_awq', 'fp8', 'int8_sq'].includes(qformat);
  const kvQuantized = kv !== 'auto';
  const dequantize = source === 'fp8' && (kvQuantized || weightsCalibrated || (qformat !== 'full_prec' && !reference));
  const floatModel = source === 'bf16' || dequantize;
  return [
    'check',
    ...(dequantize ? ['dequantize'] : []),
    ...(floatModel && (weightsCalibrated || kvQuantized) ? ['calibrate'] : []),
    'quantize',
    'write',
    ...(source === 'awq' && kvQuantized ? ['calibrate'] : []),
    ...(reference || floatModel ? ['verify'] : []),
  ];
}

const cases: [Source, string, string, boolean][] = [];
for (const source of ['bf16', 'awq', 'fp8'] as const)
  for (const qformat of qformats)
    for (const kv of kvCacheDtypes)
      for (const reference of [false, true]) {
        // An AWQ checkpoint takes no other format (checks.ts refuses it).
        if (source === 'awq' && qformat !== 'full_prec' && qformat !== 'int4_awq') continue;
        cases.push([source, qformat, kv, reference]);
      }

describe('the dry run of a native build', () => {
  it.each(cases)('%s checkpoint, --qformat %s, --kv_cache_dtype %s, --reference_dir given: %s', (source, qformat, kv, reference) => {
    const flags: BuildSettingsInput = {
      model_dir: dirs[source],
      output_dir: join(work, 'never-written'),
      qformat: qformat as BuildSettingsInput['qformat'],
      kv_cache_dtype: kv as BuildSettingsInput['kv_cache_dtype'],
      awq_block_size: 16,
      ...(reference ? { reference_dir: dirs.reference } : {}),
    };
    const s = resolveSettings({}, flags);
    const steps = expectedSteps(source, qformat, kv, reference);
    const dry = dryRunPlan(s);
    expect(dry.steps).toEqual(steps);
    // Each numbered line starts with its step's name, in the same order.
    const numbered = dry.lines.filter((l) => /^# \d+\. /.test(l));
    expect(numbered.map((l) => /^# \d+\. (\w+)/.exec(l)![1])).toEqual(steps);
    const verifies = steps.includes('verify');
    expect(dry.lines.some((l) => l.startsWith('# no accuracy report: '))).toBe(!verifies);
    // The command: the format and block size the engine gets (an AWQ checkpoint's own group, 32).
    const command = dry.lines[1];
    const builtFormat = source === 'awq' ? 'int4_awq' : qformat;
    expect(command).toContain(`--qformat=${builtFormat}`);
    if (builtFormat === 'int4_awq') expect(command).toContain(`--awq_block_size=${source === 'awq' ? 32 : 16}`);
    else expect(command).not.toContain('--awq_block_size');
    expect(command.includes('--calib_size')).toBe(steps.includes('calibrate'));
    expect(command.includes('--eval_tokens')).toBe(verifies);
    // An engine calibrated on itself is said to be, where its step is listed.
    if (source === 'awq' && kv !== 'auto') expect(numbered.at(-1 - Number(verifies))).toMatch(/running the engine itself/);
  });
});

describe('notes on settings a build ignores', () => {
  const plan = (source: Source, flags: BuildSettingsInput, given: string[]) =>
    planNativeBuild(resolveSettings({}, { model_dir: dirs[source], output_dir: join(work, 'x'), ...flags }), openSource(dirs[source]), { given: new Set(given) }).notes;

  it("an AWQ checkpoint's own group wins over --awq_block_size, and it calibrates nothing with the model's own KV cache", () => {
    expect(plan('awq', { awq_block_size: 64 }, ['awq_block_size'])).toEqual(["note: --awq_block_size 64 is ignored: the AWQ checkpoint's own group size, 32, is used"]);
    expect(plan('awq', { awq_block_size: 32 }, ['awq_block_size'])).toEqual([]);
    expect(plan('awq', { calib_dataset: 'README.md' }, ['calib_dataset'])).toEqual([
      "note: --calib_dataset is used to calibrate int4_awq, fp8, int8_sq and fp8 / int8 KV caches; ignored for a pre-quantized AWQ checkpoint with the model's own KV cache dtype",
    ]);
    expect(plan('awq', { calib_dataset: 'README.md', kv_cache_dtype: 'fp8' }, ['calib_dataset'])).toEqual([]);
  });

  it('a format knob with another format, said for the format the engine gets', () => {
    expect(plan('bf16', { awq_block_size: 32 }, ['awq_block_size'])).toEqual(['note: --awq_block_size applies to int4_awq only; ignored for full_prec']);
    expect(plan('fp8', { qformat: 'int8_wo', smoothquant_alpha: 0.3 }, ['smoothquant_alpha'])).toEqual(['note: --smoothquant_alpha applies to int8_sq only; ignored for int8_wo']);
    expect(plan('bf16', { qformat: 'int8_sq', smoothquant_alpha: 0.3, calib_dataset: 'README.md' }, ['smoothquant_alpha', 'calib_dataset'])).toEqual([]);
  });
});
