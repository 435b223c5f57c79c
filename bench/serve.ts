// bench:serve: request throughput, output tok/s, TTFT, TPOT and ITL percentiles of the real
// server at several concurrencies. The server runs in its own process on a model folder (by
// default the Qwen3-0.6B-shaped random checkpoint); the load generator streams /v1/completions
// with fixed-length token prompts (distinct per request, so the prefix cache does not help) and
// ignore_eos, so every request generates exactly --output-tokens.
//
//   npm run bench:serve [-- --model DIR] [--concurrency 1,8,32] [--rounds 1]
//                       [--prompt-tokens 128] [--output-tokens 64] [--url http://host:port]
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { engineLoopLine, runLoad, steadyLine, summarize, summaryHeader, summaryRow, tokenPrompt, type LoadSummary } from '../src/bench/load.js';
import { randomQwen3_0_6b } from './make-random-checkpoint.js';

const root = join(fileURLToPath(import.meta.url), '..', '..');

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    url: { type: 'string' },
    concurrency: { type: 'string', default: '1,8,32' },
    rounds: { type: 'string', default: '1' },
    'prompt-tokens': { type: 'string', default: '128' },
    'output-tokens': { type: 'string', default: '64' },
    threads: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});


async function startServerProcess(model: string): Promise<{ url: string; info: unknown; child: ChildProcess }> {
  const extra = args.threads ? ['--threads', args.threads] : [];
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench', 'serve-server.ts'), model, ...extra], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the server process exited with code ${code} before it was ready`)));
  });
  return { ...(JSON.parse(first) as { url: string; info: unknown }), child };
}

const promptTokens = Number(args['prompt-tokens']);
const outputTokens = Number(args['output-tokens']);
let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
// Interrupted: take the server process down with us.
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    server?.child.kill('SIGTERM');
    process.exit(130);
  });
try {
  let url = args.url;
  if (!url) {
    const model = args.model ?? randomQwen3_0_6b();
    server = await startServerProcess(model);
    url = server.url;
    console.log(`server: ${url} ${JSON.stringify(server.info)}`);
  }
  const prompt = tokenPrompt(promptTokens);
  // One request first: page the weights in and warm the allocator.
  await runLoad({ url, model: 'qwen3', concurrency: 1, requests: 1, prompt: (i) => prompt(10_000 + i), outputTokens: 4 });
  console.log(`prompt ${promptTokens} tokens, output ${outputTokens} tokens per request\n`);
  console.log(summaryHeader);
  const summaries: LoadSummary[] = [];
  let offset = 0;
  for (const c of args.concurrency.split(',').map(Number)) {
    const requests = Math.max(4, c * Number(args.rounds));
    const base = offset;
    offset += requests;
    const result = await runLoad({ url, model: 'qwen3', concurrency: c, requests, prompt: (i) => prompt(base + i), outputTokens });
    const s = summarize(result);
    summaries.push(s);
    console.log(summaryRow(s));
    const loop = engineLoopLine(s);
    if (loop) console.log(`  ${loop}`);
    const steady = steadyLine(s);
    if (steady) console.log(`  ${steady}`);
    const firstError = result.timings.find((t) => !t.ok)?.error;
    if (firstError) console.log(`  first failure: ${firstError}`);
  }
  if (args.json) console.log(JSON.stringify({ promptTokens, outputTokens, summaries }));
} finally {
  server?.child.kill('SIGTERM');
}
