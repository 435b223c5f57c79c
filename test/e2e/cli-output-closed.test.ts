// A reader that goes away (`grpst run ... | head -1`, `grpst start ... 2>&1 | head -1`): the
// command ends quietly with 141, as a Unix tool ended by SIGPIPE, instead of an unhandled EPIPE
// stack (exit 1); an interrupted start cleans up as for Ctrl-C (no staging folder, no lock). The
// pipe's reading end is closed before the command writes anything, so its first write fails.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';
import { cliArgv, makeCli, type Cli } from '../helpers/grpst-cli.js';

let work: string;
let cli: Cli;
let mar: string;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-closed-output-'));
  cli = makeCli();
  const project = path.join(work, 'project');
  fs.mkdirSync(path.join(project, 'conf'), { recursive: true });
  const conf = fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', checkpoint('tiny-a'));
  fs.writeFileSync(path.join(project, 'conf', 'inference.yml'), conf);
  // Port 0: this start never gets as far as listening.
  fs.writeFileSync(path.join(project, 'conf', 'server.yml'), 'interface:\n  host: 127.0.0.1\n  port: 0\n');
  mar = path.join(work, 'server.mar');
  const r = await cli.run(['archive', project, '-o', mar, '--include_engine']);
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

/** grpst ARGS with the reading end of stdout (and stderr, when asked) closed at once. */
async function withClosedOutput(args: string[], close: ('stdout' | 'stderr')[]) {
  const child = execa(process.execPath, [...cliArgv, ...args], { env: cli.env, cwd: work, reject: false, stdin: 'ignore', timeout: 120_000 });
  for (const stream of close) child[stream]!.destroy();
  let stderr = '';
  if (!close.includes('stderr')) child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const r = await child;
  return { code: r.exitCode, stderr };
}

describe('a closed output pipe', () => {
  it('grpst run ends quietly with 141, no EPIPE stack', async () => {
    const r = await withClosedOutput(['run', '--engine_dir', checkpoint('tiny-a'), '--input_text', 'hello', '--max_output_len', '4'], ['stdout']);
    expect(r.code, r.stderr).toBe(141);
    expect(r.stderr).toBe('');
  }, 120_000);

  it('grpst start ends with 141 and leaves no staging folder, lock or state', async () => {
    const r = await withClosedOutput(['start', mar, '--name', 'piped'], ['stdout', 'stderr']);
    expect(r.code).toBe(141);
    expect(fs.readdirSync(cli.home).filter((e) => e !== '.run')).toEqual([]);
    const run = path.join(cli.home, '.run');
    expect(fs.existsSync(run) ? fs.readdirSync(run) : []).toEqual([]);
  }, 120_000);
});
