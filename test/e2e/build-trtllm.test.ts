// `grpst build --backend trtllm` against stand-ins of TensorRT-LLM's scripts that accept only the
// flags the real argparse defines (test/fixtures/trtllm/flags.json) and record their argv.
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint } from '../helpers/fixtures.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { awqCheckpoint, leftovers, recorded, trtllmEnv, trtllmFixtures } from './build-helpers.js';

let work: string;
let cli: Cli;
let tinyA: string;
let n = 0;

function fresh(): { out: string; record: string } {
  n++;
  return { out: join(work, `engine-${n}`), record: join(work, `record-${n}.jsonl`) };
}

const seedBuildFlags = [
  '--gemm_plugin', 'bfloat16',
  '--max_batch_size', '16',
  '--kv_cache_type', 'paged',
  '--use_paged_context_fmha', 'enable',
  '--max_input_len', '32256',
  '--max_seq_len', '32768',
  '--max_num_tokens', '32256',
];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'grpst-build-trtllm-'));
  cli = makeCli();
  tinyA = checkpoint('tiny-a');
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst build --backend trtllm', () => {
  it('runs the seed commands for bf16 and writes an engine folder with its log, tokenizer and build record', async () => {
    const { out, record } = fresh();
    const r = await cli.run(['build', '--model_dir', tinyA, `--output_dir=${out}`, '--backend', 'trtllm'], { env: trtllmEnv(record) });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const calls = recorded(record);
    expect(calls.map((c) => c.tool)).toEqual(['convert_checkpoint.py', 'trtllm-build']);
    const staged = calls[0].argv[calls[0].argv.indexOf('--output_dir') + 1];
    expect(calls[0].argv).toEqual(['--model_dir', tinyA, '--output_dir', staged, '--dtype', 'bfloat16', '--load_model_on_cpu']);
    expect(staged).toMatch(/\.engine-\d+\.tmp-\d+\/tllm_checkpoint$/);
    const engineDir = calls[1].argv[calls[1].argv.indexOf('--output_dir') + 1];
    expect(calls[1].argv).toEqual(['--checkpoint_dir', staged, '--output_dir', engineDir, ...seedBuildFlags]);
    expect(readdirSync(out).sort()).toEqual(['build.log', 'config.json', 'engine.json', 'generation_config.json', 'rank0.engine', 'tokenizer.json', 'tokenizer_config.json']);
    const manifest = JSON.parse(readFileSync(join(out, 'engine.json'), 'utf8'));
    expect(manifest).toMatchObject({ format: 'grpst-engine', backend: 'trtllm', quantization: { qformat: 'full_prec' }, limits: { max_batch_size: 16, max_seq_len: 32768 } });
    const log = readFileSync(join(out, 'build.log'), 'utf8');
    expect(log).not.toMatch(/deprecated/i); // e.g. trtllm-build's warning for --paged_kv_cache
    expect(log).toContain('Loading checkpoint shards: 100%');
    expect(log).toContain('Total time of building all engines');
    expect(leftovers(work)).toEqual([]);
    expect(r.stdout).toMatch(/engine written to .*engine-\d+/);
  });

  it.each([
    ['int8_wo', [], ['--qformat', 'int8_wo']],
    ['int4_awq', ['--awq_block_size', '32'], ['--qformat', 'int4_awq', '--awq_block_size', '32']],
    ['fp8', ['--kv_cache_dtype', 'fp8'], ['--qformat', 'fp8', '--kv_cache_dtype', 'fp8']],
    ['int8_sq', ['--kv_cache_dtype=int8'], ['--qformat', 'int8_sq', '--kv_cache_dtype', 'int8']],
    ['int4_awq', ['--awq_block_size', '32', '--quantize_lm_head'], ['--qformat', 'int4_awq', '--awq_block_size', '32', '--quantize_lm_head']],
  ])('runs quantize.py for %s (%j), then trtllm-build', async (qformat, extra, expected) => {
    const { out, record } = fresh();
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend=trtllm', '--qformat', qformat, ...extra], { env: trtllmEnv(record) });
    expect(r.code, r.stderr).toBe(0);
    const calls = recorded(record);
    expect(calls.map((c) => c.tool)).toEqual(['quantize.py', 'trtllm-build']);
    const staged = calls[0].argv[calls[0].argv.indexOf('--output_dir') + 1];
    expect(calls[0].argv).toEqual(['--model_dir', tinyA, '--dtype', 'bfloat16', ...expected, '--calib_size', '512', '--calib_max_seq_length', '512', '--output_dir', staged]);
    expect(calls[1].argv.slice(4)).toEqual(seedBuildFlags);
    expect(JSON.parse(readFileSync(join(out, 'engine.json'), 'utf8')).quantization.qformat).toBe(qformat);
  });

  it.each([
    ['.txt', 'first passage of calibration text.\n\nsecond passage,\nover two lines.\n', ['first passage of calibration text.', 'second passage,\nover two lines.']],
    ['.jsonl', '{"text": "one"}\n"two"\n', ['one', 'two']],
  ])('hands a %s --calib_dataset to quantize.py as a dataset folder, with --calib_size and --calib_max_seq_length', async (ext, content, passages) => {
    const { out, record } = fresh();
    const data = join(work, `calib-${n}${ext}`);
    writeFileSync(data, content);
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend', 'trtllm', '--qformat', 'int8_sq', '--calib_dataset', data, '--calib_size', '64', '--calib_max_seq_length', '256'], { env: trtllmEnv(record) });
    expect(r.code, r.stderr).toBe(0);
    const argv = recorded(record)[0].argv;
    const dataset = argv[argv.indexOf('--calib_dataset') + 1];
    expect(dataset).toMatch(/\.engine-\d+\.tmp-\d+\/calib_dataset$/);
    expect(argv.slice(argv.indexOf('--calib_size'), argv.indexOf('--calib_size') + 4)).toEqual(['--calib_size', '64', '--calib_max_seq_length', '256']);
    const log = readFileSync(join(out, 'build.log'), 'utf8');
    expect(log).toContain(`Recognized local dataset repo ${dataset} for calibration; ${passages.length} samples`);
    expect(readdirSync(out)).not.toContain('calib_dataset');
  });

  it('converts a pre-quantized AWQ checkpoint with convert_checkpoint.py, as the seed does for Qwen3-14B-AWQ', async () => {
    const { out, record } = fresh();
    const awq = awqCheckpoint('tiny-a', 32);
    const r = await cli.run(['build', '--model_dir', awq, '--output_dir', out, '--backend', 'trtllm'], { env: trtllmEnv(record) });
    expect(r.code, r.stderr).toBe(0);
    const calls = recorded(record);
    expect(calls[0].tool).toBe('convert_checkpoint.py');
    expect(calls[0].argv).toContain('--load_model_on_cpu');
    expect(JSON.parse(readFileSync(join(out, 'engine.json'), 'utf8')).quantization.qformat).toBe('int4_awq');
  });

  it("passes a Qwen3-MoE checkpoint to convert_checkpoint.py as it is; split across ranks, the experts' split is spelled out", async () => {
    const moe = checkpoint('tiny-moe');
    const one = fresh();
    const r1 = await cli.run(['build', '--model_dir', moe, '--output_dir', one.out, '--backend', 'trtllm'], { env: trtllmEnv(one.record) });
    expect(r1.code, r1.stderr).toBe(0);
    const [convert] = recorded(one.record);
    expect(convert.argv).toEqual(['--model_dir', moe, '--output_dir', convert.argv[3], '--dtype', 'bfloat16', '--load_model_on_cpu']);
    const two = fresh();
    const r2 = await cli.run(['build', '--model_dir', moe, '--output_dir', two.out, '--backend', 'trtllm', '--tp_size', '2'], { env: trtllmEnv(two.record) });
    expect(r2.code, r2.stderr).toBe(0);
    expect(recorded(two.record)[0].argv.slice(-6)).toEqual(['--tp_size', '2', '--moe_tp_size', '2', '--moe_ep_size', '1']);
    // quantize.py has no expert flags: its own split (the same) applies.
    const q = fresh();
    const r3 = await cli.run(['build', '--model_dir', moe, '--output_dir', q.out, '--backend', 'trtllm', '--tp_size', '2', '--qformat', 'int8_wo'], { env: trtllmEnv(q.record) });
    expect(r3.code, r3.stderr).toBe(0);
    expect(recorded(q.record)[0].argv.filter((a) => a.startsWith('--moe'))).toEqual([]);
  });

  it("gives trtllm-build the source's expert routing: RENORMALIZE for norm_topk_prob true, NONE for false; another mode is refused and leaves nothing", async () => {
    const engineMode = (out: string) => JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).pretrained_config.moe.normalization_mode;
    const renorm = fresh();
    const r1 = await cli.run(['build', '--model_dir', checkpoint('tiny-moe'), '--output_dir', renorm.out, '--backend', 'trtllm'], { env: trtllmEnv(renorm.record) });
    expect(r1.code, r1.stderr).toBe(0);
    expect(engineMode(renorm.out)).toBe(1);
    const note = 'set moe.normalization_mode NONE -> RENORMALIZE in the TensorRT-LLM checkpoint: the source\'s norm_topk_prob is true';
    expect(r1.stdout + r1.stderr).toContain(note);
    expect(readFileSync(join(renorm.out, 'build.log'), 'utf8')).toContain(note);
    // The quantize.py path writes its checkpoint to the same place and gets the same fix.
    const quantized = fresh();
    const r2 = await cli.run(['build', '--model_dir', checkpoint('tiny-moe'), '--output_dir', quantized.out, '--backend', 'trtllm', '--qformat', 'fp8'], { env: trtllmEnv(quantized.record) });
    expect(r2.code, r2.stderr).toBe(0);
    expect(engineMode(quantized.out)).toBe(1);
    // tiny-moe-b does not renormalise: the converter's NONE is right and nothing is said.
    const plain = fresh();
    const r3 = await cli.run(['build', '--model_dir', checkpoint('tiny-moe-b'), '--output_dir', plain.out, '--backend', 'trtllm'], { env: trtllmEnv(plain.record) });
    expect(r3.code, r3.stderr).toBe(0);
    expect(engineMode(plain.out)).toBe(0);
    expect(r3.stdout + r3.stderr).not.toContain('normalization_mode');
    // A renormalising converter output for tiny-moe-b is turned back to NONE.
    const back = fresh();
    const r4 = await cli.run(['build', '--model_dir', checkpoint('tiny-moe-b'), '--output_dir', back.out, '--backend', 'trtllm'], { env: { ...trtllmEnv(back.record), GRPST_STANDIN_MOE_MODE: '1' } });
    expect(r4.code, r4.stderr).toBe(0);
    expect(engineMode(back.out)).toBe(0);
    // A routing grpst does not know (3: DEVICE_LIMITED) stops the build before trtllm-build.
    const other = fresh();
    const r5 = await cli.run(['build', '--model_dir', checkpoint('tiny-moe'), '--output_dir', other.out, '--backend', 'trtllm'], { env: { ...trtllmEnv(other.record), GRPST_STANDIN_MOE_MODE: '3' } });
    expect(r5.code).toBe(2);
    expect(r5.stderr).toMatch(/routes experts with moe.normalization_mode 3, not the softmax top-k routing of Qwen3-MoE\n.*fix: /);
    expect(recorded(other.record).map((c) => c.tool)).toEqual(['convert_checkpoint.py']);
    expect(existsSync(other.out)).toBe(false);
    expect(leftovers(work)).toEqual([]);
    // The dry run says what the build will set.
    const dry = await cli.run(['build', '--model_dir', checkpoint('tiny-moe'), '--output_dir', fresh().out, '--backend', 'trtllm', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("# before trtllm-build, grpst sets moe.normalization_mode in the TensorRT-LLM checkpoint's config.json to RENORMALIZE (norm_topk_prob true)");
  });

  it('refuses, before anything runs, an AutoAWQ MoE checkpoint and a --tp_size that cuts experts unevenly', async () => {
    const awq = fresh();
    const r1 = await cli.run(['build', '--model_dir', awqCheckpoint('tiny-moe', 16), '--output_dir', awq.out, '--backend', 'trtllm'], { env: trtllmEnv(awq.record) });
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/is a Qwen3-MoE checkpoint quantized by AutoAWQ; grpst passes AWQ checkpoints to TensorRT-LLM for dense Qwen3 models only\n.*fix: drop --backend trtllm/);
    const uneven = fresh();
    const r2 = await cli.run(['build', '--model_dir', checkpoint('tiny-moe'), '--output_dir', uneven.out, '--backend', 'trtllm', '--tp_size', '5'], { env: trtllmEnv(uneven.record) });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/--tp_size 5 does not divide moe_intermediate_size 48: TensorRT-LLM splits every expert across the ranks/);
    for (const c of [awq, uneven]) {
      expect(recorded(c.record)).toEqual([]);
      expect(existsSync(c.out)).toBe(false);
    }
    expect(leftovers(work)).toEqual([]);
  });

  it('finds convert_checkpoint.py in the newer examples/models/core/qwen layout', async () => {
    const { out, record } = fresh();
    const tree = join(work, 'trtllm-new');
    cpSync(join(trtllmFixtures, 'TensorRT-LLM', 'examples', 'quantization'), join(tree, 'examples', 'quantization'), { recursive: true });
    cpSync(join(trtllmFixtures, 'TensorRT-LLM', 'examples', 'qwen'), join(tree, 'examples', 'models', 'core', 'qwen'), { recursive: true });
    cpSync(join(trtllmFixtures, 'standin.py'), join(tree, 'standin.py'));
    cpSync(join(trtllmFixtures, 'flags.json'), join(tree, 'flags.json'));
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend', 'trtllm', '--trtllm_dir', tree], { env: trtllmEnv(record) });
    expect(r.code, r.stderr).toBe(0);
    expect(recorded(record)[0].tool).toBe('convert_checkpoint.py');
  });

  it('prints shell-quoted commands with --dry-run and runs nothing', async () => {
    const { out, record } = fresh();
    const odd = join(work, "it's here");
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', odd, '--backend', 'trtllm', '--qformat', 'fp8', '--dry-run'], { env: trtllmEnv(record) });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[1]).toMatch(/^python3 \S+\/examples\/quantization\/quantize\.py --model_dir \S+ --dtype bfloat16 --qformat fp8 --calib_size 512 --calib_max_seq_length 512 --output_dir '.*it'\\''s here\/tllm_checkpoint'$/);
    expect(lines[2]).toContain(`--output_dir '${odd.replace("'", `'\\''`)}' ${seedBuildFlags.join(' ')}`);
    expect(recorded(record)).toEqual([]);
    expect(existsSync(out)).toBe(false);
    // What is printed is what a shell runs: the quoted path comes back whole.
    const echoed = await execa('sh', ['-c', `printf '%s\\n' ${lines[2].split(' --output_dir ')[1].split(' --gemm_plugin')[0]}`]);
    expect(echoed.stdout).toBe(odd);
  });

  it('plans the examples/models/core/qwen script (v1.0 on, the releases that convert Qwen3) when the tree is not there yet', async () => {
    const { out, record } = fresh();
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend', 'trtllm', '--trtllm_dir', join(work, 'not-yet-cloned'), '--dry-run'], { env: trtllmEnv(record) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`python3 ${join(work, 'not-yet-cloned')}/examples/models/core/qwen/convert_checkpoint.py --model_dir`);
  });

  it('prints a JSON summary with --json', async () => {
    const { out, record } = fresh();
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend', 'trtllm', '--json'], { env: trtllmEnv(record) });
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ ok: true, backend: 'trtllm', qformat: 'full_prec', output_dir: out, log: join(out, 'build.log') });
    expect(summary.commands).toHaveLength(2);
    expect(r.stderr).toMatch(/convert/); // progress lines went to stderr
  });
});

describe('grpst build --backend trtllm: what goes wrong', () => {
  it('says what to install when TensorRT-LLM, Python or trtllm-build is missing (exit 3)', async () => {
    const { out, record } = fresh();
    const noDir = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend', 'trtllm'], { env: { ...trtllmEnv(record), TRTLLM_DIR: '' } });
    expect(noDir.code).toBe(3);
    expect(noDir.stderr).toMatch(/TensorRT-LLM's source tree is needed.*\n.*fix: .*--trtllm_dir/);
    const noPython = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend', 'trtllm', '--python', '/nonexistent/python3'], { env: trtllmEnv(record) });
    expect(noPython.code).toBe(3);
    expect(noPython.stderr).toMatch(/Python interpreter "\/nonexistent\/python3" not found[\s\S]*pip install tensorrt_llm/);
    const noBuild = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend', 'trtllm'], { env: { ...trtllmEnv(record), TRTLLM_BUILD: join(work, 'no-trtllm-build') } });
    expect(noBuild.code).toBe(3);
    expect(noBuild.stderr).toMatch(/trtllm-build not found[\s\S]*pip install tensorrt_llm/);
    const emptyTree = join(work, 'empty-tree');
    cpSync(join(trtllmFixtures, 'bin'), join(emptyTree, 'bin'), { recursive: true });
    const noScript = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend', 'trtllm', '--trtllm_dir', emptyTree], { env: trtllmEnv(record) });
    expect(noScript.code).toBe(3);
    expect(noScript.stderr).toMatch(/has neither examples\/qwen\/convert_checkpoint\.py/);
    expect(recorded(record)).toEqual([]);
    expect(existsSync(out)).toBe(false);
    expect(leftovers(work)).toEqual([]);
  });

  it('shows the last lines and exit code of a failing step and leaves nothing behind (exit 4)', async () => {
    const { out, record } = fresh();
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend', 'trtllm', '--qformat', 'int8_sq'], {
      env: trtllmEnv(record, { GRPST_STANDIN_FAIL: 'quantize.py' }),
    });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/quantize failed \(exit code 1\)\. Last lines:/);
    expect(r.stderr).toContain('RuntimeError: quantize.py failed on purpose');
    expect(r.stderr).toContain('working on layer 29');
    const logPath = /see the whole log in (\S+)/.exec(r.stderr)![1];
    expect(readFileSync(logPath, 'utf8')).toContain('working on layer 0');
    rmSync(logPath);
    expect(recorded(record).map((c) => c.tool)).toEqual(['quantize.py']);
    expect(existsSync(out)).toBe(false);
    expect(leftovers(work)).toEqual([]);
  });

  it('explains the FP8 error of a GPU without FP8 in plain words', async () => {
    const { out, record } = fresh();
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--backend', 'trtllm', '--qformat', 'fp8'], {
      env: trtllmEnv(record, { GRPST_STANDIN_NO_FP8: '1' }),
    });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/this GPU cannot run FP8/);
    expect(r.stderr).toMatch(/compute capability 8\.9/);
    expect(r.stderr).toMatch(/fix: build int8_sq, int8_wo or int4_awq instead/);
    expect(r.stderr).toContain('Networks with FP8 precision require hardware with FP8 support');
    expect(existsSync(out)).toBe(false);
  });
});

describe('the TensorRT-LLM stand-ins', () => {
  it('reject flags the real argparse does not define, and bad choices, as argparse does', async () => {
    const convert = join(trtllmFixtures, 'TensorRT-LLM', 'examples', 'qwen', 'convert_checkpoint.py');
    const unknown = await execa('python3', [convert, '--model_dir', 'x', '--qformat', 'fp8'], { reject: false, cwd: work });
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('unrecognized arguments: --qformat fp8');
    const choice = await execa(join(trtllmFixtures, 'bin', 'trtllm-build'), ['--checkpoint_dir', 'x', '--paged_kv_cache', 'enable', '--use_paged_context_fmha', 'maybe'], { reject: false, cwd: work });
    expect(choice.exitCode).toBe(2);
    expect(choice.stderr).toContain("argument --use_paged_context_fmha: invalid choice: 'maybe'");
    // quantize.py's calibration loader takes a dataset name or a dataset folder, not a text file.
    const quantize = join(trtllmFixtures, 'TensorRT-LLM', 'examples', 'quantization', 'quantize.py');
    const file = join(work, 'calib-plain.txt');
    writeFileSync(file, 'some text\n');
    const plain = await execa('python3', [quantize, '--model_dir', 'x', '--qformat', 'fp8', '--calib_dataset', file, '--output_dir', join(work, 'q-out')], { reject: false, cwd: work });
    expect(plain.exitCode).toBe(1);
    expect(plain.stderr).toContain(`NotImplementedError: Unsupported dataset name or local repo directory: ${file}.`);
    // A flag only some recorded versions define is refused: commands must work on all of them.
    const newer = await execa(join(trtllmFixtures, 'bin', 'trtllm-build'), ['--checkpoint_dir', 'x', '--reduce_fusion', 'enable'], { reject: false, cwd: work });
    expect(newer.exitCode).toBe(2);
  });
});
