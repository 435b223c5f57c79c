// `grpst run` refuses what it cannot act on before it loads anything, by the flag's name: the
// wrong folder (a file in it, a project folder around the engine), an empty message, a top_p
// that keeps no token; and a GRPST_CPU_KERNELS that names no kernel level by the variable's name.
// And the summary it prints after an answer reads as written for people.
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint } from '../helpers/fixtures.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';

let work: string;
let cli: Cli;
let tinyA: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'grpst-run-args-'));
  cli = makeCli();
  tinyA = checkpoint('tiny-a');
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(cli.home, { recursive: true, force: true });
});

async function refused(args: string[]): Promise<string> {
  const r = await cli.run(['run', '--max_output_len', '2', ...args]);
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  return r.stderr;
}

describe('grpst run with bad arguments', () => {
  it('a weights file as --engine_dir names the folder that holds it', async () => {
    const err = await refused(['--engine_dir', join(tinyA, 'model.safetensors'), '--input_text', 'hi']);
    expect(err).toContain('model.safetensors is a file, not a folder');
    expect(err).toContain(`fix: pass the folder that holds it: ${tinyA}`);
    expect(err).not.toMatch(/tokenizer/);
  });

  it('a project folder as --engine_dir points at the engine inside it', async () => {
    const project = join(work, 'my project');
    mkdirSync(join(project, 'conf'), { recursive: true });
    writeFileSync(join(project, 'conf', 'inference.yml'), 'models: []\n');
    cpSync(tinyA, join(project, 'engine'), { recursive: true });
    writeFileSync(join(project, 'engine', 'engine.json'), '{}');
    const err = await refused(['--engine_dir', project, '--input_text', 'hi']);
    expect(err).toContain('holds neither engine.json (an engine) nor config.json (a checkpoint)');
    expect(err).toContain(`--engine_dir '${join(project, 'engine')}'`);
    expect(err).not.toMatch(/tokenizer_dir/);
  });

  it('an empty --input_text is refused instead of generating from nothing', async () => {
    for (const text of ['', '  \n']) {
      const err = await refused(['--engine_dir', tinyA, '--input_text', text]);
      expect(err).toContain('error: --input_text is empty');
      expect(err).toContain('fix: pass the message to answer');
    }
  });

  it('--top_p 0 is refused as a bad flag value, not as an engine error', async () => {
    const err = await refused(['--engine_dir', tinyA, '--input_text', 'hi', '--top_p', '0']);
    expect(err).toContain("option '--top_p <p>' argument '0' is invalid");
    expect(err).not.toMatch(/topP|invalid request/);
  });

  it('a bad GRPST_CPU_KERNELS is refused by the variable\'s name, with the levels and the fix', async () => {
    const r = await cli.run(['run', '--engine_dir', tinyA, '--input_text', 'hi', '--max_output_len', '2'], { env: { GRPST_CPU_KERNELS: 'avx9000' } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('error: GRPST_CPU_KERNELS is set to "avx9000", which is not a CPU kernel level: it takes amx, avx512, avx2 or scalar, and this CPU runs ');
    expect(r.stderr).toMatch(/\n {2}fix: unset GRPST_CPU_KERNELS to use this CPU's best level \(\w+\), or set it to .*scalar$/m);
    expect(r.stderr).not.toMatch(/model folder|load options/);
    // grpst serve (and the daemon of grpst start) refuses it the same way before it listens.
    const serve = await cli.run(['serve', '--model_dir', tinyA, '--port', '0'], { env: { GRPST_CPU_KERNELS: 'avx9000' } });
    expect(serve.code, serve.stderr).toBe(2);
    expect(serve.stderr).toMatch(/^error: GRPST_CPU_KERNELS is set to "avx9000".*\n {2}fix: unset GRPST_CPU_KERNELS/m);
    expect(`${serve.stdout}${serve.stderr}`).not.toContain('listening on');
    // grpst build runs the runtime to calibrate and to score: refused at its check, nothing written.
    const out = join(work, 'bad-kernels-engine');
    const build = await cli.run(['build', '--model_dir', tinyA, '--output_dir', out, '--qformat', 'int8_wo'], { env: { GRPST_CPU_KERNELS: 'avx9000' } });
    expect(build.code, build.stderr).toBe(2);
    expect(build.stderr).toMatch(/^error: GRPST_CPU_KERNELS is set to "avx9000"/m);
    expect(build.stderr).not.toMatch(/verify|quantize/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('grpst run summary', () => {
  it('the summary line names a checkpoint as one and counts a single thread as one', async () => {
    const r = await cli.run(['run', '--engine_dir', tinyA, '--input_text', 'hi', '--max_output_len', '2', '--threads', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^engine: .* \(unquantized checkpoint, KV cache \w+, cpu \w+, 1 thread\)$/m);
  });
});
