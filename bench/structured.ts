// bench:structured: what constrained decoding costs. Part 1 times the grammar matcher alone
// (vocabulary trie, schema compilation, a token mask computed cold, a cached mask); part 2 runs
// the real engine and compares the decode step time of constrained requests with unconstrained
// ones at batch 1 and 32, with the matcher's caches cold (a fresh grammar) and warm (the same
// requests again). Requests are cancelled after --tokens tokens, so every one of them is
// decoding for the whole measured window.
//
//   npm run bench:structured [-- --model DIR|tiny-a] [--batches 1,32] [--tokens 32] [--reps 2] [--threads N] [--greedy]
import { parseArgs } from 'node:util';
import { Tokenizer } from '../src/chat/tokenizer.js';
import { loadEngine } from '../src/engine/index.js';
import type { GenerationEngine, SubmitRequest } from '../src/engine/types.js';
import { nativeVocabulary, type NativeGrammar } from '../src/structured/native.js';
import { StructuredOutputs } from '../src/structured/structured-outputs.js';
import { checkpoint } from '../test/helpers/fixtures.js';
import { randomQwen3_0_6b } from './make-random-checkpoint.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    batches: { type: 'string', default: '1,32' },
    tokens: { type: 'string', default: '32' },
    reps: { type: 'string', default: '2' },
    threads: { type: 'string' },
    greedy: { type: 'boolean', default: false },
  },
});

/** Mostly strings (dense masks) with keys and numbers between them (sparse masks); never complete within the run. */
const schema = {
  type: 'array',
  items: {
    type: 'object',
    properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0, maximum: 150 }, tags: { type: 'array', items: { type: 'string' } } },
    required: ['name', 'age', 'tags'],
  },
  minItems: 20,
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (s: number) => `${s.toFixed(2)} ms`;

function matcherFigures(tokenizer: Tokenizer) {
  let t0 = performance.now();
  nativeVocabulary(tokenizer);
  const vocabMs = performance.now() - t0;
  const outputs = new StructuredOutputs(tokenizer);
  const compiled = outputs.compile({ kind: 'json_schema', schema }, false);
  const g = compiled.grammar;
  // Walk one output and time each mask: computed once per new state, then served from the cache.
  const words = new Uint32Array(Math.ceil(tokenizer.vocabSize / 32));
  const text = '[{"name": "Ada Lovelace", "age": 36, "tags": ["math", "poetry"]}, {"name": "Alan", "age": 41, "tags": []}, {"name": "Grace';
  const cold: number[] = [];
  const warm: number[] = [];
  for (const pass of [cold, warm]) {
    const m = g.matcher();
    for (const t of tokenizer.encode(text)) {
      pass.push(m.fillMask(words) * 1e3);
      if (!m.accept(t)) throw new Error('the bench text does not follow the schema');
    }
  }
  const stats = g.stats();
  t0 = performance.now();
  outputs.compile({ kind: 'json_schema', schema }, false);
  const cachedCompileMs = performance.now() - t0;
  return {
    vocabMs,
    trieNodes: nativeVocabulary(tokenizer).trieNodes,
    compileMs: compiled.compileMs,
    cachedCompileMs,
    nodes: compiled.nodes,
    masksComputed: stats.masksComputed,
    coldMaskMs: (stats.maskSeconds * 1e3) / stats.masksComputed,
    walkMaxMs: Math.max(...cold),
    warmMaskUs: median(warm) * 1e3,
    steps: cold.length,
  };
}

/** Deterministic prompt of ordinary tokens, different per request. */
function prompt(i: number, length = 32): number[] {
  const out: number[] = [];
  let x = (i + 1) * 2654435761;
  for (let k = 0; k < length; k++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(1000 + (x % 100000));
  }
  return out;
}

interface Window {
  stepMs: number;
  /** Process CPU time per step (all threads): steadier than wall time on a busy machine. */
  cpuMs: number;
  /** Time the grammar matcher took per step (all rows' masks, cache misses included), timed in native code. */
  matcherMs: number;
  steps: number;
}

/** Decode step time while `batch` requests are all decoding, between their first token and the first that reaches `tokens`. */
async function decodeWindow(engine: GenerationEngine, batch: number, tokens: number, grammar?: NativeGrammar): Promise<Window> {
  const constraint = grammar?.constraint();
  let f0 = 0;
  const acs = Array.from({ length: batch }, () => new AbortController());
  const counts = new Array<number>(batch).fill(0);
  let started = 0;
  let t0 = 0;
  let s0 = 0;
  let c0 = process.cpuUsage();
  let window: Window | undefined;
  const close = () => {
    if (window) return;
    const steps = Math.max(1, engine.stats().steps - s0);
    const cpu = process.cpuUsage(c0);
    const matcherMs = grammar ? ((grammar.stats().fillSeconds - f0) * 1e3) / steps : 0;
    window = { stepMs: (performance.now() - t0) / steps, cpuMs: (cpu.user + cpu.system) / 1e3 / steps, matcherMs, steps };
    for (const ac of acs) ac.abort();
  };
  await Promise.all(
    acs.map(async (ac, i) => {
      const req: SubmitRequest = {
        tokens: prompt(i),
        sampling: { temperature: args.greedy ? 0 : 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, seed: 17 + i },
        maxTokens: 4096,
        stopTokenIds: [151645, 151643],
        constraint,
        signal: ac.signal,
      };
      for await (const ev of engine.submit(req)) {
        if (counts[i] === 0 && ev.tokens.length > 0 && ++started === batch) {
          t0 = performance.now();
          s0 = engine.stats().steps;
          c0 = process.cpuUsage();
          f0 = grammar?.stats().fillSeconds ?? 0;
        }
        counts[i] += ev.tokens.length;
        if (started === batch && (counts[i] > tokens || ev.finishReason)) close();
      }
    }),
  );
  if (!window) throw new Error('no decode window was measured');
  return window;
}

async function main() {
  const dir = !args.model ? randomQwen3_0_6b() : ['tiny-a', 'tiny-b'].includes(args.model) ? checkpoint(args.model as 'tiny-a') : args.model;
  const tokenizer = Tokenizer.fromDir(dir);
  const m = matcherFigures(tokenizer);
  console.log('## grammar matcher (one thread)');
  console.log(`vocabulary trie: ${m.trieNodes.toLocaleString()} nodes, built in ${ms(m.vocabMs)}`);
  console.log(`schema -> automaton (${m.nodes} nodes) -> matcher: ${ms(m.compileMs)}; again from the cache: ${ms(m.cachedCompileMs)}`);
  console.log(`${m.steps} steps of one output: ${m.masksComputed} masks computed, ${ms(m.coldMaskMs)} each on average (slowest ${ms(m.walkMaxMs)}); cached mask: ${m.warmMaskUs.toFixed(1)} us`);

  const batches = args.batches.split(',').map(Number);
  const tokens = Number(args.tokens);
  const reps = Number(args.reps);
  const engine = await loadEngine(dir, {
    device: 'cpu',
    threads: args.threads ? Number(args.threads) : undefined,
    maxBatchSize: Math.max(...batches),
    maxSeqLen: 1024,
    maxNumTokens: 1024,
    maxTokensInPagedKvCache: Math.max(...batches) * 256,
  });
  console.log(`\n## decode step time, ${args.greedy ? 'greedy' : 'temperature 1'}, ${engine.info.kernels}, ${engine.info.threads} threads, ${dir}`);
  console.log('wall time per step (CPU time per step, all threads), median of the repetitions; matcher: the');
  console.log("grammar matcher's own time per step (all rows, cache misses included), timed in native code:\n");
  console.log('| batch | unconstrained | constrained, cold caches | overhead | matcher | constrained, warm caches | overhead | matcher |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  try {
    await decodeWindow(engine, 1, 4); // warm the engine up
    for (const batch of batches) {
      const runs: Record<'free' | 'cold' | 'warm', Window[]> = { free: [], cold: [], warm: [] };
      for (let r = 0; r < reps; r++) {
        runs.free.push(await decodeWindow(engine, batch, tokens));
        // A fresh compiler: a new matcher whose caches start empty.
        const grammar = new StructuredOutputs(tokenizer).compile({ kind: 'json_schema', schema }, false).grammar;
        runs.cold.push(await decodeWindow(engine, batch, tokens, grammar));
        runs.warm.push(await decodeWindow(engine, batch, tokens, grammar));
      }
      const wall = (k: keyof typeof runs) => median(runs[k].map((w) => w.stepMs));
      const cpu = (k: keyof typeof runs) => median(runs[k].map((w) => w.cpuMs));
      const cell = (k: keyof typeof runs) => `${ms(wall(k))} (${ms(cpu(k))})`;
      const pct = (k: keyof typeof runs) => {
        const p = (a: number, b: number) => `${(((a - b) / b) * 100).toFixed(1)}%`;
        return `${p(wall(k), wall('free'))} (${p(cpu(k), cpu('free'))})`;
      };
      const matcher = (k: keyof typeof runs) => ms(median(runs[k].map((w) => w.matcherMs)));
      console.log(`| ${batch} | ${cell('free')} | ${cell('cold')} | ${pct('cold')} | ${matcher('cold')} | ${cell('warm')} | ${pct('warm')} | ${matcher('warm')} |`);
    }
  } finally {
    await engine.close();
  }
}

await main();
