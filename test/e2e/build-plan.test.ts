// `grpst build --dry-run` against the real build, for each kind of source checkpoint (unquantized,
// AutoAWQ, block-scaled FP8) and a spread of formats, KV caches and references: the steps the dry
// run lists are the phases the build runs, in order; each phase ends once; the report the dry run
// promises is the one the build makes; and the command it prints names the format and block size
// the engine gets (an AWQ checkpoint's own, whatever the flags say).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readManifest } from '../../src/build/manifest.js';
import { checkpoint } from '../helpers/fixtures.js';
import { fp8Checkpoint } from '../helpers/fp8-checkpoint.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { awqCheckpoint, leftovers, trtllmEnv } from './build-helpers.js';

let work: string;
let cli: Cli;
let n = 0;
const models: Record<'bf16' | 'awq' | 'fp8', string> = { bf16: '', awq: '', fp8: '' };
let tinyA = '';
let tinyB = '';

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'grpst-build-plan-'));
  cli = makeCli();
  tinyA = checkpoint('tiny-a');
  tinyB = checkpoint('tiny-b');
  models.bf16 = tinyA;
  models.awq = awqCheckpoint('tiny-a', 32); // group 32, where --awq_block_size defaults to 128
  models.fp8 = fp8Checkpoint();
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(cli.home, { recursive: true, force: true });
});

/** Short calibration and report: the steps, not the numbers, are under test. */
const quick = ['--calib_size', '4', '--eval_tokens', '130'];

/** A phase's first line in plain progress output: `[  1.2s] name` or `[  1.2s] name: detail`. */
const phaseLine = /^\[[^\]]+\] (check|dequantize|calibrate|quantize|write|verify|convert|engine)(?:: .*)?$/;
const doneLine = /^\[[^\]]+\] (\w+) done in /;

function matches(text: string, re: RegExp): string[] {
  return text
    .split('\n')
    .map((l) => re.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
}

interface Outcome {
  /** The step names the dry run printed, as its numbered lines begin. */
  planned: string[];
  plan: { steps: string[]; plan: string[] };
  summary: { steps: string[]; qformat: string; accuracy?: unknown };
  progress: string;
  out: string;
}

async function dryRunThenBuild(model: string, flags: string[], env?: NodeJS.ProcessEnv): Promise<Outcome> {
  const out = join(work, `engine-${++n}`);
  const args = ['build', '--model_dir', model, '--output_dir', out, ...flags, '--json'];
  const dry = await cli.run([...args, '--dry-run'], { env });
  expect(dry.code, dry.stderr).toBe(0);
  const plan = JSON.parse(dry.stdout) as Outcome['plan'];
  const planned = plan.plan.map((l) => /^# \d+\. (\w+)/.exec(l)?.[1]).filter((x): x is string => x !== undefined);
  const real = await cli.run(args, { env });
  expect(real.code, real.stderr).toBe(0);
  expect(leftovers(work)).toEqual([]);
  return { planned, plan, summary: JSON.parse(real.stdout) as Outcome['summary'], progress: real.stderr, out };
}

function expectPlanKept(o: Outcome): void {
  // The numbered lines, the JSON's steps, the phases the progress showed and the summary's steps agree.
  expect(o.plan.steps).toEqual(o.planned);
  expect(matches(o.progress, phaseLine)).toEqual(o.planned);
  expect(o.summary.steps).toEqual(o.planned);
  // Every phase ends once, as itself: no second "done" for a phase that already ended.
  expect(matches(o.progress, doneLine)).toEqual(o.planned);
}

function expectReportAsPlanned(o: Outcome): void {
  const verifies = o.planned.includes('verify');
  expect(o.summary.accuracy !== undefined, o.progress).toBe(verifies);
  expect(o.plan.plan.some((l) => l.startsWith('# no accuracy report'))).toBe(!verifies);
  expect(o.progress.includes('accuracy report skipped')).toBe(!verifies);
  // A line that announces a report the build then skips would contradict it.
  if (!verifies) expect(o.progress).not.toMatch(/accuracy report below/);
}

function expectCommandAsBuilt(o: Outcome): void {
  const m = readManifest(o.out);
  const command = o.plan.plan[1];
  expect(command).toMatch(/^grpst build /);
  expect(command).toContain(`--qformat=${m.quantization.qformat}`);
  if (m.quantization.awq_block_size !== undefined) expect(command).toContain(`--awq_block_size=${m.quantization.awq_block_size}`);
  else expect(command).not.toContain('--awq_block_size');
  expect(o.summary.qformat).toBe(m.quantization.qformat);
}

type Case = [label: string, flags: string[]];

describe.each<[keyof typeof models, Case[]]>([
  [
    'bf16',
    [
      ['full_prec', []],
      ['int8_wo', ['--qformat', 'int8_wo']],
      ['int4_awq, block 32', ['--qformat', 'int4_awq', '--awq_block_size', '32']],
      ['fp8 with an fp8 KV cache', ['--qformat', 'fp8', '--kv_cache_dtype', 'fp8']],
      ['int8_sq with an int8 KV cache', ['--qformat', 'int8_sq', '--kv_cache_dtype', 'int8']],
    ],
  ],
  [
    'awq',
    [
      ['as it is', []],
      ['as it is, --qformat int4_awq', ['--qformat', 'int4_awq']],
      ['with an int8 KV cache and a reference', ['--kv_cache_dtype', 'int8', '--reference_dir', 'tiny-a']],
      ['with a reference', ['--reference_dir', 'tiny-a']],
    ],
  ],
  [
    'fp8',
    [
      ['full_prec', []],
      ['full_prec with a reference', ['--reference_dir', 'tiny-b']],
      ['full_prec with an int8 KV cache', ['--kv_cache_dtype', 'int8']],
      ['int8_wo', ['--qformat', 'int8_wo']],
      ['int8_wo with a reference', ['--qformat', 'int8_wo', '--reference_dir', 'tiny-b']],
      ['fp8', ['--qformat', 'fp8']],
      ['int4_awq, block 16, with an fp8 KV cache', ['--qformat', 'int4_awq', '--awq_block_size', '16', '--kv_cache_dtype', 'fp8']],
    ],
  ],
])('from the %s checkpoint, the dry run lists the steps the build runs', (source, cases) => {
  it.each(cases)('%s', async (_label, flags) => {
    // Fixture paths are known only once beforeAll has made them.
    const resolved = flags.map((f) => (f === 'tiny-a' ? tinyA : f === 'tiny-b' ? tinyB : f));
    const o = await dryRunThenBuild(models[source], [...resolved, ...quick]);
    expectPlanKept(o);
    expectReportAsPlanned(o);
    expectCommandAsBuilt(o);
  });
});

describe('an AutoAWQ checkpoint with a quantized KV cache', () => {
  it('calibrates its engine once, after writing it, and promises no report it cannot make', async () => {
    const o = await dryRunThenBuild(models.awq, ['--kv_cache_dtype', 'fp8', ...quick]);
    expect(o.planned).toEqual(['check', 'quantize', 'write', 'calibrate']);
    expect(o.progress.match(/calibrate done/g)).toHaveLength(1);
    expect(o.progress).toMatch(/KV cache: fp8 scales for 2 layers in engine\.json\n/);
    expect(o.plan.plan[1]).toContain('--qformat=int4_awq');
    expect(o.plan.plan[1]).toContain('--awq_block_size=32');
    expect(readManifest(o.out).kv_cache.scales).toHaveLength(2);
  });

  it('says that an --awq_block_size other than its own group is ignored, in the dry run and the build alike', async () => {
    const o = await dryRunThenBuild(models.awq, ['--awq_block_size', '64', ...quick]);
    const note = "note: --awq_block_size 64 is ignored: the AWQ checkpoint's own group size, 32, is used";
    expect(o.plan.plan).toContain(`# ${note}`);
    expect(o.progress).toContain(note);
    expect(o.progress).not.toMatch(/ignored for full_prec/);
    expect(readManifest(o.out).quantization.awq_block_size).toBe(32);
  });
});

describe('--backend trtllm', () => {
  it('lists the phases its build runs too', async () => {
    const env = trtllmEnv(join(work, 'record.jsonl'));
    const o = await dryRunThenBuild(tinyA, ['--backend', 'trtllm', '--qformat', 'int8_wo'], env);
    expect(o.plan.steps).toEqual(['check', 'quantize', 'engine', 'write']);
    expect(o.summary.steps).toEqual(o.plan.steps);
    expect(matches(o.progress, phaseLine)).toEqual(o.plan.steps);
  });
});
