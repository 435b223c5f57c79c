// The daemon lifecycle (start, ps, logs, stop, drain, crashes) with real processes, serving a
// TensorRT-LLM engine folder through the trtllm-serve stand-in in test/e2e/stand-ins.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/daemon/ports.js';
import { groupMembers } from '../../src/daemon/processes.js';
import { repoRoot, tokenizerDir } from '../helpers/fixtures.js';
import { makeCli, standInDir, type Cli } from '../helpers/grpst-cli.js';

let work: string;
let engine: string;
let cli: Cli;
let record: string;

function project(name: string, serverYml: string, edit: (conf: string) => string = (c) => c): string {
  const dir = path.join(work, name);
  fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
  const conf = fs
    .readFileSync(path.join(repoRoot, 'conf', 'inference_qwen3.yml'), 'utf8')
    .replace('tokenizer_path: /tmp/Qwen3-8B/', `tokenizer_path: ${tokenizerDir}`)
    .replace('gpt_model_path: /tmp/Qwen3-8B/engine/', `gpt_model_path: ${engine}`);
  fs.writeFileSync(path.join(dir, 'conf', 'inference_qwen3.yml'), edit(conf));
  fs.writeFileSync(path.join(dir, 'conf', 'server.yml'), serverYml);
  return dir;
}

async function archived(name: string, serverYml: string, edit?: (conf: string) => string): Promise<string> {
  const dir = project(name, serverYml, edit);
  const res = await cli.run(['archive', '.'], { cwd: dir });
  expect(res.code, res.stderr).toBe(0);
  return dir;
}

const serverOn = (port: number) => `interface:\n  host: 127.0.0.1\n  port: ${port}\nlog:\n  log_backup_count: 2\n`;
const calls = () => (fs.existsSync(record) ? fs.readFileSync(record, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { argv: string[] }) : []);
const stateOf = (name: string) => JSON.parse(fs.readFileSync(path.join(cli.home, '.run', `${name}.json`), 'utf8')) as { pid: number; pgid: number; httpPort: number };

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-trtllm-'));
  engine = path.join(work, 'trt_engines');
  fs.mkdirSync(engine);
  fs.writeFileSync(path.join(engine, 'config.json'), JSON.stringify({ version: '0.20.0', pretrained_config: { architecture: 'Qwen3ForCausalLM' }, build_config: { max_batch_size: 16 } }));
  fs.writeFileSync(path.join(engine, 'rank0.engine'), 'plan');
  record = path.join(work, 'calls.jsonl');
  cli = makeCli({ standIns: true, env: { GRPST_STANDIN_RECORD: record } });
});

afterAll(async () => {
  // Never leave a server behind, whatever a failed test left running.
  for (const f of fs.existsSync(path.join(cli.home, '.run')) ? fs.readdirSync(path.join(cli.home, '.run')) : []) {
    if (f.endsWith('.json')) await cli.run(['stop', f.slice(0, -5), '--timeout', '5']);
  }
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

describe('a TensorRT-LLM engine under grpst start', () => {
  it('start -> ps -> logs -> stop, with trtllm-serve launched on the conf flags', async () => {
    const port = await freePort('127.0.0.1');
    const dir = await archived('p1', serverOn(port));
    const started = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'trt1'], { cwd: dir });
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toContain(`PORT(HTTP,RPC) ${port}  NAME trt1`);
    expect(started.stdout).toContain('stop:  grpst stop trt1');

    const argv = calls().at(-1)!.argv;
    expect(argv.slice(0, 12)).toEqual([engine, '--tokenizer', tokenizerDir, '--host', '127.0.0.1', '--port', String(port), '--backend', 'tensorrt', '--log_level', 'info', '--kv_cache_free_gpu_memory_fraction']);
    const extraFile = argv[argv.indexOf('--extra_llm_api_options') + 1];
    expect(fs.readFileSync(extraFile, 'utf8')).toBe('kv_cache_config:\n  enable_block_reuse: true\nscheduler_config:\n  capacity_scheduler_policy: GUARANTEED_NO_EVICT\n');

    const ps = await cli.run(['ps']);
    const row = ps.stdout.split('\n').find((l) => l.includes('trt1'))!;
    const { pid } = stateOf('trt1');
    expect(row.split(/\s+/)).toEqual([String(port), 'trt1', String(pid), path.join(cli.home, 'trt1'), 'running']);
    const models = await fetch(`http://127.0.0.1:${port}/v1/models`).then((r) => r.json() as Promise<{ data: { id: string }[] }>);
    expect(models.data[0].id).toBe(engine);

    const logs = await cli.run(['logs', 'trt1']);
    expect(logs.stdout).toContain('Uvicorn running on http://127.0.0.1');
    expect(logs.stdout).not.toMatch(/api_key|Bearer/);

    const stopped = await cli.run(['stop', 'trt1']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stderr).toContain('trt1 stopped');
    expect(groupMembers(pid)).toEqual([]);
    expect(fs.readdirSync(path.join(cli.home, '.run')).filter((f) => f.startsWith('trt1'))).toEqual([]);
    expect((await cli.run(['ps'])).stdout).not.toContain('trt1');
    expect(fs.readFileSync(path.join(cli.home, 'trt1', 'logs', 'grpst_server.log'), 'utf8')).toMatch(/Shutting down[\s\S]*trtllm-serve exited \(code 0\)/);
  });

  it('SIGTERM during 8 streaming requests: all 8 complete, then the server exits', async () => {
    const port = await freePort('127.0.0.1');
    const dir = await archived('p2', serverOn(port));
    expect((await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'drain'], { cwd: dir })).code).toBe(0);
    const ended: number[] = [];
    const streams = Array.from({ length: 8 }, async () => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ stream: true, max_tokens: 60, messages: [] }) });
      const text = await res.text();
      ended.push(Date.now());
      return text;
    });
    await new Promise((r) => setTimeout(r, 300));
    const stopped = await cli.run(['stop', 'drain', '--timeout', '30']);
    const bodies = await Promise.all(streams);
    for (const body of bodies) {
      expect(body.match(/"content":"w\d+ "/g)).toHaveLength(60);
      expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
    }
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toContain('drain stopped');
    const log = fs.readFileSync(path.join(cli.home, 'drain', 'logs', 'grpst_server.log'), 'utf8');
    const sigterm = Date.parse(/^(\S+) INFO SIGTERM: trtllm-serve drains/m.exec(log)![1]);
    expect(Math.min(...ended)).toBeGreaterThan(sigterm);
  });

  it('refuses a running name and a taken port, with the fix', async () => {
    const port = await freePort('127.0.0.1');
    const dir = await archived('p3', serverOn(port));
    expect((await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'busy'], { cwd: dir })).code).toBe(0);
    const again = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'busy'], { cwd: dir });
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/busy is already running \(pid \d+, port \d+\)\n {2}fix: stop it first with `grpst stop busy`/);
    const other = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'other'], { cwd: dir });
    expect(other.code).toBe(2);
    expect(other.stderr).toContain(`port ${port} is taken by grpst server busy`);
    expect(fs.existsSync(path.join(cli.home, 'other'))).toBe(false);
    expect(fs.existsSync(path.join(cli.home, '.run', 'other.json'))).toBe(false);
    expect((await cli.run(['stop', 'busy'])).code).toBe(0);
  });

  it('kill -9: ps shows it dead, start with the same name works again', async () => {
    const port = await freePort('127.0.0.1');
    const dir = await archived('p4', serverOn(port));
    expect((await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'victim'], { cwd: dir })).code).toBe(0);
    const { pid, pgid } = stateOf('victim');
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const ps = await cli.run(['ps']);
    expect(ps.stdout).toMatch(/victim\s+\d+\s+\S+\s+dead/);
    const json = JSON.parse((await cli.run(['ps', '--json'])).stdout) as { name: string; status: string }[];
    expect(json.find((s) => s.name === 'victim')?.status).toBe('dead');

    // trtllm-serve outlived its parent and still holds the port; start clears the dead group first.
    const restarted = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'victim'], { cwd: dir });
    expect(restarted.code, restarted.stderr).toBe(0);
    expect(restarted.stderr).toContain('victim had died');
    expect(groupMembers(pgid)).toEqual([]);
    expect((await cli.run(['ps'])).stdout).toMatch(/victim\s+\d+\s+\S+\s+running/);
    const logs = fs.readFileSync(path.join(cli.home, 'victim', 'logs', 'grpst_server.log'), 'utf8');
    expect(logs.match(/grpst serve \(pid/g)).toHaveLength(2); // the first run's log was kept
    expect((await cli.run(['stop', 'victim'])).code).toBe(0);

    // A dead entry can also be pruned.
    expect((await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'victim'], { cwd: dir })).code).toBe(0);
    const second = stateOf('victim');
    process.kill(-second.pgid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const pruned = await cli.run(['ps', '--prune']);
    expect(pruned.stdout).toContain('dead');
    expect((await cli.run(['ps'])).stdout).not.toContain('victim');
  });

  it('a server that crashes while starting: start fails with the log tail and leaves no state', async () => {
    const port = await freePort('127.0.0.1');
    const dir = await archived('p5', serverOn(port));
    const res = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'crash'], { cwd: dir, env: { GRPST_STANDIN_FAIL: 'trtllm-serve' } });
    expect(res.code).toBe(4);
    expect(res.stderr).toContain('crash exited while starting; the last lines of its log:');
    expect(res.stderr).toContain('| RuntimeError: Failed to deserialize the engine');
    expect(fs.readdirSync(path.join(cli.home, '.run')).filter((f) => f.startsWith('crash'))).toEqual([]);
    expect((await cli.run(['ps'])).stdout).not.toContain('crash');
  });

  it('a server that does not get healthy within --timeout is stopped and leaves no state', async () => {
    const port = await freePort('127.0.0.1');
    const dir = await archived('p6', serverOn(port));
    const res = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'slow', '--timeout', '1'], { cwd: dir, env: { TRTLLM_STANDIN_LOAD_MS: '60000' } });
    expect(res.code).toBe(4);
    expect(res.stderr).toContain('slow did not become healthy within 1 s');
    expect(res.stderr).toContain('fix: raise --timeout');
    expect(fs.existsSync(path.join(cli.home, '.run', 'slow.json'))).toBe(false);
  });

  it('--mpi_np 2 on a two-GPU host runs trtllm-serve with tensor parallelism 2', async () => {
    const port = await freePort('127.0.0.1');
    const dir = await archived('p11', serverOn(port));
    const twoGpus = { PATH: `${path.join(standInDir, 'two-gpus')}${path.delimiter}${cli.env.PATH}` };
    const res = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'tp2', '--mpi_np=2'], { cwd: dir, env: twoGpus });
    expect(res.code, res.stderr).toBe(0);
    const argv = calls().at(-1)!.argv;
    expect(argv[argv.indexOf('--tp_size') + 1]).toBe('2');
    expect((await cli.run(['stop', 'tp2'])).code).toBe(0);
    const three = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'tp3', '--mpi_np', '3'], { cwd: dir, env: twoGpus });
    expect(three.stderr).toContain('--mpi_np 3 needs 3 GPUs, but 2 are available (nvidia-smi lists 2)');
    expect(three.stderr).toContain('fix: pass --mpi_np 2 or less');
  });

  it('without trtllm-serve on PATH: a clear error naming the native alternative', async () => {
    const port = await freePort('127.0.0.1');
    const dir = await archived('p7', serverOn(port));
    const res = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'notrt'], { cwd: dir, env: { PATH: path.dirname(process.execPath) } });
    expect(res.code).toBe(3);
    expect(res.stderr).toContain("is a TensorRT-LLM engine, and serving it needs TensorRT-LLM's trtllm-serve, which is not on PATH");
    expect(res.stderr).toContain('build a native engine instead: grpst build');
    expect(fs.existsSync(path.join(cli.home, 'notrt'))).toBe(false);
  });
});

describe('start refuses bad input before anything starts', () => {
  it('--mpi_np above the GPUs available, unknown names, bad flags', async () => {
    const dir = await archived('p8', serverOn(await freePort('127.0.0.1')));
    const np = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--mpi_np', '2'], { cwd: dir });
    expect(np.code).toBe(2);
    expect(np.stderr).toMatch(/--mpi_np 2 needs 2 GPUs, but 0 are available \(nvidia-smi is not installed or found no GPU\)/);
    const stop = await cli.run(['stop', 'nobody']);
    expect(stop.code).toBe(1);
    expect(stop.stderr).toContain('error: no server named nobody');
    const logs = await cli.run(['logs', 'nobody']);
    expect(logs.code).toBe(1);
    const flag = await cli.run(['start', './server.mar', '--timeout', 'soon'], { cwd: dir });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--timeout takes seconds');
    const name = await cli.run(['start', './server.mar', '--name', '../evil'], { cwd: dir });
    expect(name.code).toBe(2);
    expect(name.stderr).toContain('invalid server name "../evil"');
  });

  it('conf errors: missing file, YAML syntax (line and column), wrong type, unknown key with a suggestion', async () => {
    const port = await freePort('127.0.0.1');
    const dir = await archived('p9', serverOn(port));
    const start = (conf: string) => cli.run(['start', './server.mar', `--inference_conf=${conf}`, '--name', 'confs'], { cwd: dir });
    const missing = await start('conf/nope.yml');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--inference_conf=conf/nope.yml: no such file');

    const good = fs.readFileSync(path.join(dir, 'conf', 'inference_qwen3.yml'), 'utf8');
    fs.writeFileSync(path.join(dir, 'syntax.yml'), good.replace('  - name: trtllm_model', '  - name: [trtllm_model'));
    const syntax = await start('syntax.yml');
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toMatch(/error: syntax\.yml:\d+:\d+: YAML syntax error/);

    fs.writeFileSync(path.join(dir, 'type.yml'), good.replace('enable_thinking: true', 'enable_thinking: sometimes'));
    const type = await start('type.yml');
    expect(type.stderr).toMatch(/type\.yml:\d+:\d+: models\[0\]\.inferer_args\.enable_thinking: expected boolean, got "sometimes"/);

    fs.writeFileSync(path.join(dir, 'key.yml'), good.replace('top_p: 0.95', 'top_pp: 0.95'));
    const key = await start('key.yml');
    expect(key.stderr).toMatch(/key\.yml:\d+:\d+: models\[0\]\.inferer_args\.sampling\.top_pp: unknown key; did you mean "top_p"\?/);
    for (const res of [type, key]) expect(res.code).toBe(2);
    expect(fs.existsSync(path.join(cli.home, 'confs'))).toBe(false);
    expect(fs.readdirSync(cli.home).filter((f) => f.startsWith('.staging'))).toEqual([]);
  });

  it('a hostile .mar is refused and nothing is written outside (or inside) the deploy path', async () => {
    const { rawZip } = await import('../helpers/raw-zip.js');
    const mar = path.join(work, 'evil.mar');
    fs.writeFileSync(mar, rawZip([{ name: '../../escaped.txt', data: Buffer.from('x') }]));
    const res = await cli.run(['start', mar, '--inference_conf=conf/inference_qwen3.yml', '--name', 'evil']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('path climbs out with ".."');
    expect(fs.existsSync(path.join(cli.home, '..', 'escaped.txt'))).toBe(false);
    expect(fs.existsSync(path.join(cli.home, 'evil'))).toBe(false);
    const notMar = await cli.run(['start', path.join(work, 'p1', 'conf', 'server.yml'), '--name', 'evil']);
    expect(notMar.stderr).toContain('is not a valid .mar');
  });

  it('a deploy folder grpst did not create is never replaced', async () => {
    const dir = await archived('p10', serverOn(await freePort('127.0.0.1')));
    fs.mkdirSync(path.join(cli.home, 'precious'));
    fs.writeFileSync(path.join(cli.home, 'precious', 'thesis.tex'), 'years of work');
    const res = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_qwen3.yml', '--name', 'precious'], { cwd: dir });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('exists and was not created by grpst start');
    expect(fs.readFileSync(path.join(cli.home, 'precious', 'thesis.tex'), 'utf8')).toBe('years of work');
  });
});
