// `grpst build` and `grpst run` as a person or a CI job runs them: real processes, exit codes,
// messages that name the problem and the fix, and nothing left behind when a build fails.
import { chmodSync, closeSync, cpSync, existsSync, mkdirSync, readdirSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeAddon } from '../../src/engine/addon.js';
import { readSafetensorsHeader } from '../../src/model/safetensors.js';
import { checkpoint } from '../helpers/fixtures.js';
import { execa } from 'execa';
import { cliArgv, makeCli, type Cli } from '../helpers/grpst-cli.js';
import { leftovers } from './build-helpers.js';

let work: string;
let cli: Cli;
let tinyA: string;
let engine: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'grpst-build-cli-'));
  cli = makeCli();
  tinyA = checkpoint('tiny-a');
  engine = join(work, 'engine');
  const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', engine, '--qformat', 'int8_wo', '--eval_tokens', '130', '--json']);
  expect(r.code, r.stderr).toBe(0);
}, 180_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(cli.home, { recursive: true, force: true });
});

function variant(name: string, edit: (dir: string) => void): string {
  const dir = join(work, name);
  cpSync(tinyA, dir, { recursive: true });
  edit(dir);
  return dir;
}

async function failing(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string; stdout: string; out: string }> {
  const out = join(work, `out-${Math.random().toString(36).slice(2)}`);
  const r = await cli.run(['build', '--output_dir', out, ...args], { env });
  expect(existsSync(out), 'nothing may be left at --output_dir').toBe(false);
  expect(leftovers(work)).toEqual([]);
  return { code: r.code, stderr: r.stderr, stdout: r.stdout, out };
}

describe('grpst build on the command line', () => {
  it('prints a JSON summary with the accuracy report, progress on stderr', async () => {
    const manifest = JSON.parse(readFileSync(join(engine, 'engine.json'), 'utf8'));
    expect(manifest.quantization.qformat).toBe('int8_wo');
    const again = await cli.run(['build', '--model_dir', tinyA, '--output_dir', join(work, 'json'), '--eval_tokens=130', '--json', '--awq_block_size', '32']);
    expect(again.code, again.stderr).toBe(0);
    const summary = JSON.parse(again.stdout);
    expect(summary).toMatchObject({ ok: true, backend: 'native', qformat: 'full_prec', dtype: 'bfloat16', output_dir: join(work, 'json') });
    expect(summary.accuracy).toMatchObject({ top1_agreement: 1, mean_kl: 0 });
    expect(again.stderr).toMatch(/quantize done/);
    expect(again.stderr).toMatch(/top-1 agreement +100\.00%/);
    expect(again.stderr).toContain('note: --awq_block_size applies to int4_awq only; ignored for full_prec');
  });

  it('builds from a recipe, with flags overriding its keys', async () => {
    const recipe = join(work, 'tiny.yml');
    writeFileSync(recipe, `name: tiny\nmodel_dir: ${tinyA}\noutput_dir: ${join(work, 'never')}\nqformat: fp8\neval_tokens: 130\n`);
    const out = join(work, 'from-recipe');
    const r = await cli.run(['build', recipe, '--output_dir', out, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`--output_dir=${out}`);
    expect(r.stdout).toContain('--qformat=fp8');
    expect(r.stdout).toMatch(/calibrate on the built-in calibration text/);
    expect(existsSync(out)).toBe(false);
  });

  it('a relative path in a recipe that is not there from the current folder names the recipe and the folder', async () => {
    const recipe = join(work, 'relative.yml');
    writeFileSync(recipe, 'model_dir: ../hf\noutput_dir: ../engine-rel\n');
    const r = await cli.run(['build', recipe, '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error).toMatch(/recipe .*relative\.yml: model_dir \.\.\/hf does not exist from the current folder \(.*\/hf\)[\s\S]*fix: run grpst from the folder/);
    // The flag overrides the recipe's path, so the recipe's is not checked.
    const overridden = await cli.run(['build', recipe, '--model_dir', tinyA, '--dry-run']);
    expect(overridden.code, overridden.stderr).toBe(0);
  });

  it('refuses an existing output folder unless --force', async () => {
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', engine, '--eval_tokens', '130']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--output_dir .*engine already exists\n.*fix: pass --force/);
    // --dry-run says so too, rather than a plan the build would refuse
    const dry = await cli.run(['build', '--model_dir', tinyA, '--output_dir', engine, '--dry-run']);
    expect(dry.code).toBe(2);
    expect(dry.stderr).toMatch(/--output_dir .*engine already exists/);
    expect((await cli.run(['build', '--model_dir', tinyA, '--output_dir', engine, '--dry-run', '--force'])).code).toBe(0);
    const before = readFileSync(join(engine, 'engine.json'), 'utf8');
    const forced = await cli.run(['build', '--model_dir', tinyA, '--output_dir', engine, '--eval_tokens', '130', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(engine, 'engine.json'), 'utf8')).quantization.qformat).toBe('full_prec');
    expect(before).not.toBe(readFileSync(join(engine, 'engine.json'), 'utf8'));
    expect(leftovers(work)).toEqual([]);
    const back = await cli.run(['build', '--model_dir', tinyA, '--output_dir', engine, '--qformat', 'int8_wo', '--eval_tokens', '130', '--force']);
    expect(back.code, back.stderr).toBe(0);
  });
});

describe('grpst build: bad input and a full disk', () => {
  it('a missing --model_dir', async () => {
    const r = await failing(['--model_dir', join(work, 'nope')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--model_dir .*nope does not exist\n.*fix: pass the folder of a Hugging Face Qwen3 checkpoint/);
    expect(r.stderr).not.toMatch(/\n +at /); // bad input: the message and the fix, no stack
    const debug = await failing(['--model_dir', join(work, 'nope')], { GRPST_DEBUG: '1' });
    expect(debug.code).toBe(2);
    expect(debug.stderr).toMatch(/does not exist[\s\S]*\n +at .*openSource/); // GRPST_DEBUG=1: the whole stack too
    // its config.json instead of the folder: the fix names the folder
    const file = await failing(['--model_dir', join(tinyA, 'config.json')]);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain(`${join(tinyA, 'config.json')} is a file, not a model folder`);
    expect(file.stderr).toContain(`fix: pass the folder that holds it and the safetensors files: ${tinyA}`);
  });

  it('a folder that is not a checkpoint', async () => {
    const empty = join(work, 'empty');
    mkdirSync(empty, { recursive: true });
    const r = await failing(['--model_dir', empty]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config\.json not found/);
  });

  // A checkpoint downloaded by another user with mode 600: said as that, not as "config.json not
  // found" or "tokenizer.json is not valid JSON". root reads anything, so the build runs as nobody.
  it.each(['config.json', 'model.safetensors', 'tokenizer.json'])('%s this user may not read', async (file) => {
    const dir = variant(`unreadable-${file}`, (d) => chmodSync(join(d, file), 0o600));
    chmodSync(work, 0o755);
    chmodSync(dir, 0o755);
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    if (!('uid' in asUser)) chmodSync(join(dir, file), 0o000);
    const out = join(work, `unreadable-${file}-out`);
    mkdirSync(out, { mode: 0o777 });
    chmodSync(out, 0o777);
    const r = await execa(process.execPath, [...cliArgv, 'build', '--model_dir', dir, '--output_dir', join(out, 'engine')], { env: cli.env, cwd: work, reject: false, stdin: 'ignore', ...asUser });
    expect(r.exitCode, String(r.stderr)).toBe(2);
    expect(r.stderr).toContain(`error: cannot read ${join(dir, file)} (EACCES): this user may not\n  fix: make it readable (chmod a+r ${join(dir, file)}), or run as the user that owns it`);
    expect(readdirSync(out)).toEqual([]);
  });

  it('an engine folder given as --model_dir', async () => {
    const r = await failing(['--model_dir', engine, '--qformat', 'fp8']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: --model_dir ${engine} is an engine folder (engine.json), not a Hugging Face checkpoint\n  fix: pass the checkpoint folder it was built from`);
  });

  it('a config that is not Qwen3', async () => {
    const llama = variant('llama', (d) => {
      const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
      writeFileSync(join(d, 'config.json'), JSON.stringify({ ...c, model_type: 'llama', architectures: ['LlamaForCausalLM'] }));
    });
    const r = await failing(['--model_dir', llama]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/model_type is "llama" \(LlamaForCausalLM\), not qwen3 or qwen3_moe\n.*fix: grpst builds Qwen3 models/);
  });

  it('a truncated safetensors file', async () => {
    const cut = variant('truncated', (d) => truncateSync(join(d, 'model.safetensors'), 1_000_000));
    const r = await failing(['--model_dir', cut, '--qformat', 'int8_wo']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/model\.safetensors is not a valid safetensors file: tensor .* ends at byte \d+ but the file has 1000000 bytes \(truncated\?\)/);
  });

  it('NaN weights: the accuracy report names the tensor instead of writing an engine', async () => {
    const poisoned = variant('nan', (d) => {
      const file = join(d, 'model.safetensors');
      const q = readSafetensorsHeader(file).tensors.find((x) => x.name === 'model.layers.0.self_attn.q_proj.weight')!;
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.from([0xc0, 0x7f, 0xc0, 0x7f]), 0, 4, q.offset + 64); // two bf16 NaNs
      closeSync(fd);
    });
    const r = await failing(['--model_dir', poisoned, '--eval_tokens', '130', '--json']);
    expect(r.code).toBe(2);
    const answer = JSON.parse(r.stdout);
    expect(answer).toMatchObject({ ok: false, exit_code: 2 });
    expect(answer.error).toMatch(/model\.safetensors: tensor model\.layers\.0\.self_attn\.q_proj\.weight holds NaN or Inf values[\s\S]*fix: the checkpoint is damaged/);
  });

  it('a --max_seq_len past the model\'s positions', async () => {
    const r = await failing(['--model_dir', tinyA, '--max_seq_len', '100000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--max_seq_len 100000 is past the model's 40960 positions[\s\S]*fix: pass --max_seq_len 40960 or less/);
  });

  it('a dataset path that is not there fails before any work, naming the flag', async () => {
    for (const flag of ['--eval_dataset', '--calib_dataset']) {
      const r = await failing(['--model_dir', tinyA, '--qformat', 'int8_sq', flag, join(work, 'no-such.txt')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`${flag} .*no-such\\.txt does not exist\n.*fix: pass a \\.txt file`));
      expect(r.stdout).not.toMatch(/calibrat|quantiz|write/i); // nothing ran
    }
  });

  it.skipIf(probeAddon().cuda)('--device cuda on a runtime without the CUDA backend fails before any work, naming the fix', async () => {
    const r = await failing(['--model_dir', tinyA, '--qformat', 'int8_sq', '--device', 'cuda']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--device cuda asks for the GPU, but this build of the native runtime has only the CPU backend\n.*fix: pass --device cpu or auto/);
    expect(r.stdout).not.toMatch(/calibrat|quantiz|write/i); // nothing ran
    // cpu and auto (no GPU here) calibrate and verify on the CPU, and say so; the manifest records it
    const out = join(work, 'device-cpu');
    const ok = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--qformat', 'int8_sq', '--device', 'cpu', '--calib_size', '4', '--eval_tokens', '65', '--dry-run']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/calibrate on .*, on the CPU/);
    expect(ok.stdout).toMatch(/verify: .*, on the CPU/);
    const built = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--qformat', 'int8_sq', '--calib_size', '4', '--eval_tokens', '65']);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stdout).toMatch(/calibrate done in [\d.]+s: on CPU \(\w+\)/);
    expect(built.stdout).toMatch(/verify done in [\d.]+s: on CPU \(\w+\)/);
    expect(JSON.parse(readFileSync(join(out, 'engine.json'), 'utf8')).quantization.calibration.device).toMatch(/^CPU \(\w+\)$/);
  });

  it('--calib_dataset with a format that calibrates nothing is noted as ignored', async () => {
    const data = join(work, 'calib.txt');
    writeFileSync(data, 'Some text.\n\nMore text.\n');
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', join(work, 'bf16-noted'), '--calib_dataset', data, '--eval_tokens', '65']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("note: --calib_dataset is used to calibrate int4_awq, fp8, int8_sq and fp8 / int8 KV caches; ignored for full_prec with the model's own KV cache dtype");
  });

  it('an unknown qformat', async () => {
    const r = await failing(['--model_dir', tinyA, '--qformat', 'int3']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/argument 'int3' is invalid\. Allowed choices are full_prec, int8_wo, int4_awq, fp8, int8_sq/);
    // with --json, the command line's own errors answer in JSON on stdout too (CI parses it)
    const json = await cli.run(['build', '--model_dir', tinyA, '--output_dir', join(work, 'never-json'), '--qformat', 'int3', '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, exit_code: 2, error: expect.stringMatching(/argument 'int3' is invalid/) });
  });

  it('an unknown KV cache dtype, on the command line and in a recipe', async () => {
    const r = await failing(['--model_dir', tinyA, '--kv_cache_dtype', 'fp4']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/argument 'fp4' is invalid\. Allowed choices are auto, fp8, int8/);
    const recipe = join(work, 'bad-kv.yml');
    writeFileSync(recipe, `model_dir: ${tinyA}\nkv_cache_dtype: float16\n`);
    const fromRecipe = await failing([recipe]);
    expect(fromRecipe.code).toBe(2);
    expect(fromRecipe.stderr).toMatch(/kv_cache_dtype must be one of auto, fp8, int8\n.*fix: /);
  });

  // The sizes offered divide every input dimension (hidden 64, o_proj's 128, down_proj's 160):
  // 64 divides the first but not down_proj's, so offering it would only move the error.
  it('an int4 block size that does not divide the input dimension', async () => {
    const r = await failing(['--model_dir', tinyA, '--qformat', 'int4_awq', '--awq_block_size', '128']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/awq_block_size 128 does not divide the input dimension 64 of q\/k\/v_proj and gate\/up_proj \(hidden_size\)\n.*fix: use an --awq_block_size that divides every input dimension \(64, 128, 160\): 16, 32$/);
    const next = await failing(['--model_dir', tinyA, '--qformat', 'int4_awq', '--awq_block_size', '64']);
    expect(next.code).toBe(2);
    expect(next.stderr).toMatch(/awq_block_size 64 does not divide the input dimension 160 of down_proj \(intermediate_size\)\n.*fix: use an --awq_block_size that divides every input dimension \(64, 128, 160\): 16, 32$/);
  });

  /** An int8_sq build into `out`, sent `sig` once its accuracy report starts; its pid, whether the signal went out, and its output. */
  async function signalledBuild(out: string, sig: NodeJS.Signals) {
    const child = execa(process.execPath, [...cliArgv, 'build', '--model_dir', tinyA, '--output_dir', out, '--qformat', 'int8_sq'], {
      env: cli.env,
      cwd: work,
      reject: false,
      stdin: 'ignore',
      timeout: 120_000,
    });
    let sent = false;
    child.stdout?.on('data', (d: Buffer) => {
      // progress goes to stdout without --json
      if (!sent && /verify: /.test(String(d))) {
        sent = true;
        child.kill(sig);
      }
    });
    const r = await child;
    return { pid: child.pid, sent, exitCode: r.exitCode, output: `${String(r.stdout)}\n${String(r.stderr)}` };
  }

  // The signal comes in the accuracy report's phase, after the weights are written: the last
  // seconds of a build, and on a real model on CPU the longest after the packing.
  // The --output_dir's parents did not exist either: the build made them, and removes them again.
  it.each(['SIGINT', 'SIGTERM'] as const)('%s during the accuracy report stops the build and leaves nothing behind', async (sig) => {
    const made = join(work, `interrupted-${sig}`);
    const out = join(made, 'engines', 'int8_sq');
    const { sent, exitCode, output } = await signalledBuild(out, sig);
    expect(sent, output).toBe(true);
    expect(exitCode, output).toBe(4);
    expect(output).toMatch(new RegExp(`build interrupted by ${sig}`));
    expect(output).not.toMatch(/engine written/);
    expect(existsSync(made), 'nothing may be left at --output_dir, nor the folders made for it').toBe(false);
    expect(leftovers(work)).toEqual([]);
  });

  // SIGKILL leaves no chance to clean up; the next build in that folder, whatever its output, does.
  it('a build killed with SIGKILL leaves its staging folder, which the next build in the folder removes and names', async () => {
    const parent = join(work, 'killed');
    const killed = await signalledBuild(join(parent, 'first'), 'SIGKILL');
    expect(killed.sent, killed.output).toBe(true);
    const left = readdirSync(parent);
    expect(left).toEqual([`.first.tmp-${killed.pid}`]);
    const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', join(parent, 'second')], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`removed ${join(parent, left[0])}, left by an interrupted build`);
    expect(readdirSync(parent)).toEqual(['second']);
  });

  it('a full disk: the build stops with a clear error and leaves nothing behind', async () => {
    const r = await failing(['--model_dir', tinyA, '--qformat', 'int8_wo'], { GRPST_TEST_DISK_LIMIT_BYTES: '2000000' });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/the disk is full while writing .* \(ENOSPC\); nothing was left behind\n.*fix: free space/);
  });
});

describe('grpst run', () => {
  it('streams an answer and ends with token counts and speeds', async () => {
    const r = await cli.run(['run', '--engine_dir', engine, '--input_text', '你好，你是谁？', '--max_output_len', '12']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContain('---');
    expect(r.stdout).toMatch(/engine: .* \(int8_wo, KV cache bfloat16, cpu \w+, \d+ threads?\)/);
    expect(r.stdout).toMatch(/prompt tokens: \d+, output tokens: (12 \(reached --max_output_len\)|\d+ \(stopped at end of turn\))/);
    expect(r.stdout).toMatch(/prefill: [\d.]+ tok\/s \(first token after \d+ ms\)/);
    expect(r.stdout).toMatch(/decode: [\d.]+ tok\/s/);
  });

  it('runs an engine built with an fp8 KV cache, and says so', async () => {
    const fp8 = join(work, 'engine-fp8-kv');
    const b = await cli.run(['build', '--model_dir', tinyA, '--output_dir', fp8, '--kv_cache_dtype', 'fp8', '--eval_tokens', '130', '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/runs the engine with its fp8 KV cache/);
    const r = await cli.run(['run', '--engine_dir', fp8, '--input_text', '你好，你是谁？', '--max_output_len', '12']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/engine: .* \(full_prec, KV cache fp8, cpu \w+, \d+ threads?\)/);
    expect(r.stdout).toMatch(/prompt tokens: \d+, output tokens: (12 \(reached --max_output_len\)|\d+ \(stopped at end of turn\))/);
    expect(r.stdout.split('\n---\n')[0].trim()).not.toBe('');
  });

  it('is greedy and repeatable by default, and reads the tokenizer from --tokenizer_dir', async () => {
    const a = await cli.run(['run', '--engine_dir', engine, '--input_text', 'Hello', '--max_output_len', '8']);
    const b = await cli.run(['run', '--engine_dir', engine, '--tokenizer_dir', tinyA, '--input_text', 'Hello', '--max_output_len', '8', '--enable_thinking']);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const text = (s: string) => s.split('\n---\n')[0];
    const again = await cli.run(['run', '--engine_dir', engine, '--input_text', 'Hello', '--max_output_len', '8']);
    expect(text(again.stdout)).toBe(text(a.stdout));
    // Thinking changes the prompt (no empty think block), so the prompt is longer without it.
    const promptTokens = (s: string) => Number(/prompt tokens: (\d+)/.exec(s)![1]);
    expect(promptTokens(a.stdout)).toBeGreaterThan(promptTokens(b.stdout));
  });

  it('explains a missing engine folder and a TensorRT-LLM engine', async () => {
    const missing = await cli.run(['run', '--engine_dir', join(work, 'nope'), '--input_text', 'hi']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--engine_dir .* does not exist/);
    const trt = join(work, 'trt');
    mkdirSync(trt);
    cpSync(join(tinyA, 'tokenizer.json'), join(trt, 'tokenizer.json'));
    cpSync(join(tinyA, 'tokenizer_config.json'), join(trt, 'tokenizer_config.json'));
    writeFileSync(join(trt, 'engine.json'), JSON.stringify({ format: 'grpst-engine', format_version: 1, backend: 'trtllm' }));
    const r = await cli.run(['run', '--engine_dir', trt, '--input_text', 'hi']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/holds a TensorRT-LLM engine .*\n.*fix: serve it with TensorRT-LLM/);
  });
});
