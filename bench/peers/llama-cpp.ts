// llama.cpp as a measured peer, through node-llama-cpp (its prebuilt CPU libraries, which pick
// the kernel set for this CPU at load time). Installed on first use into .cache/peers, outside
// the project's dependencies: only this benchmark needs it. The timings mirror
// bench/engine-timing.ts's: the same prompts (token ids), greedy decoding, the same spans.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promptIds } from '../prompt-ids.js';

export const NODE_LLAMA_CPP_VERSION = '3.22.1';

// The few node-llama-cpp shapes used here (the package is loaded at run time, untyped).
interface LlamaSequence {
  evaluate(tokens: number[], options: { temperature: number }): AsyncGenerator<number, void, unknown>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  clearHistory(): Promise<void>;
  dispose(): void;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}
interface LlamaModel {
  createContext(o: { contextSize: number; batchSize: number; threads: number; sequences: number; flashAttention?: boolean }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(o: { modelPath: string; gpuLayers: number }): Promise<LlamaModel>;
  systemInfo: string;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(o: { gpu: false; build: 'never'; logLevel: 'error' }): Promise<Llama>;
}

/** node-llama-cpp and its linux-x64 CPU binaries (not the GPU variants: 85 MB, not 700). */
export async function loadNodeLlamaCpp(root: string): Promise<NodeLlamaCpp> {
  const dir = join(root, '.cache', 'peers', `node-llama-cpp-${NODE_LLAMA_CPP_VERSION}`);
  const entry = join(dir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
  if (!existsSync(entry)) {
    if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('this benchmark installs llama.cpp\'s linux-x64 build; run it on linux x64');
    mkdirSync(dir, { recursive: true });
    const deps = { 'node-llama-cpp': NODE_LLAMA_CPP_VERSION, '@node-llama-cpp/linux-x64': NODE_LLAMA_CPP_VERSION };
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ private: true, dependencies: deps }, null, 2));
    process.stderr.write(`installing node-llama-cpp ${NODE_LLAMA_CPP_VERSION} into ${dir} ...\n`);
    const r = spawnSync('npm', ['install', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`npm install of node-llama-cpp exited with ${r.status}: the npm registry must be reachable`);
  }
  return (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
}

export interface LlamaCppPeer {
  systemInfo: string;
  prefillTokS(n: number, salt: number): Promise<number>;
  decodeTokS(batch: number, tokens: number, salt: number, promptLen?: number): Promise<number>;
  /** Greedy tokens after a prompt, for the same-weights check. */
  greedy(prompt: number[], n: number): Promise<number[]>;
  close(): Promise<void>;
}

/** Times one sequence's greedy generation: first token and last token instants. */
async function generate(seq: LlamaSequence, prompt: number[], tokens: number, t0: number): Promise<{ firstAt: number; lastAt: number; out: number[] }> {
  const out: number[] = [];
  let firstAt = 0;
  let lastAt = 0;
  for await (const token of seq.evaluate(prompt, { temperature: 0 })) {
    const now = performance.now() - t0;
    if (!firstAt) firstAt = now;
    lastAt = now;
    out.push(token);
    if (out.length >= tokens) break;
  }
  return { firstAt, lastAt, out };
}

/**
 * One model, one context of `maxBatch` sequences of `contextSize` tokens each (llama.cpp decodes the sequences that have work
 * in one batch), `threads` threads, a 512-token batch.
 */
export async function openLlamaCpp(root: string, gguf: string, o: { threads: number; maxBatch: number; contextSize: number }): Promise<LlamaCppPeer> {
  const { getLlama } = await loadNodeLlamaCpp(root);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: o.contextSize, batchSize: 512, threads: o.threads, sequences: o.maxBatch });
  const sequences = Array.from({ length: o.maxBatch }, () => context.getSequence());
  const clear = () => Promise.all(sequences.map((s) => s.clearHistory()));
  return {
    systemInfo: llama.systemInfo.trim(),
    async prefillTokS(n, salt) {
      await clear();
      const t0 = performance.now();
      await sequences[0]!.evaluateWithoutGeneratingNewTokens(promptIds(n, salt));
      return n / ((performance.now() - t0) / 1000);
    },
    async decodeTokS(batch, tokens, salt, promptLen = 32) {
      await clear();
      const t0 = performance.now();
      const runs = await Promise.all(sequences.slice(0, batch).map((s, i) => generate(s, promptIds(promptLen, salt + i), tokens, t0)));
      const start = Math.max(...runs.map((r) => r.firstAt));
      const end = Math.max(...runs.map((r) => r.lastAt));
      return runs.reduce((a, r) => a + r.out.length - 1, 0) / ((end - start) / 1000);
    },
    async greedy(prompt, n) {
      await clear();
      return (await generate(sequences[0]!, prompt, n, performance.now())).out;
    },
    async close() {
      for (const s of sequences) s.dispose();
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}
