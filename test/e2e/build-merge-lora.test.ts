// `grpst build --merge_lora DIR`: a PEFT LoRA adapter merged into the weights as the build reads
// them, so the engine is the adapted model in any format, with nothing left to apply at run time.
// The bf16 engine must match transformers + peft on the adapted model (the fixture of
// test/native/lora.test.ts) up to the rounding of the merged weights to bf16, and the runtime's own
// unmerged adapter on the base engine; a quantized merge is calibrated and scored against the merged
// float model; and what cannot be merged is refused before anything is written.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild, type BuildSummary } from '../../src/build/index.js';
import { readManifest } from '../../src/build/manifest.js';
import { resolveSettings, type BuildSettingsInput } from '../../src/build/options.js';
import { MemoryReporter } from '../../src/build/progress.js';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { checkpoint } from '../helpers/fixtures.js';
import { loraAdapter, loraRefs } from '../helpers/lora-fixtures.js';
import { firstNearTie, greedy, run } from '../native/helpers.js';
import { awqCheckpoint, leftovers } from './build-helpers.js';

let work: string;
let n = 0;
const engines: Engine[] = [];
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'grpst-build-lora-'));
});
afterAll(async () => {
  for (const e of engines) await e.close().catch(() => {});
  rmSync(work, { recursive: true, force: true });
});

async function build(flags: BuildSettingsInput): Promise<BuildSummary> {
  const s = resolveSettings({}, { output_dir: join(work, `engine-${++n}`), eval_tokens: 256, model_dir: checkpoint('tiny-b'), ...flags });
  return runBuild(s, { reporter: new MemoryReporter(), version: 'test', bridge: loadRuntimeBridge });
}
async function open(dir: string): Promise<Engine> {
  const e = await loadEngine(dir, { kvCacheDtype: 'float32', maxSeqLen: 1024, maxTokensInPagedKvCache: 4096 });
  engines.push(e);
  return e;
}

describe('--merge_lora', () => {
  it('a bf16 engine of the adapted model: transformers + peft within bf16 rounding, and the runtime\'s own adapter', async () => {
    const built = await build({ merge_lora: loraAdapter('tiny-b-lora-all') });
    expect(built.steps).toEqual(['check', 'quantize', 'write']);
    const m = readManifest(built.output_dir);
    expect(m.source.merged_lora).toEqual({ name: 'tiny-b-lora-all', rank: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
    expect(Object.keys(m.source.sha256)).toEqual(expect.arrayContaining(['tiny-b-lora-all/adapter_config.json', 'tiny-b-lora-all/adapter_model.safetensors']));
    const merged = await open(built.output_dir);
    const base = await open(checkpoint('tiny-b'));
    const adapter = (await base.loadLoraAdapter(loraAdapter('tiny-b-lora-all'))).handle;
    const ref = loraRefs().adapters.find((a) => a.name === 'tiny-b-lora-all')!;
    for (const p of ref.prompts) {
      const req = { tokens: p.prompt_ids, sampling: greedy, maxTokens: 24, promptLogprobs: true, logprobs: 1 };
      const a = await run(merged, req);
      const b = await run(base, { ...req, lora: adapter });
      const plain = await run(base, req);
      const lp = (r: typeof a) => r.first.promptLogprobs!.slice(1).map((e) => e!.logprob);
      const gap = (x: number[], y: number[]) => Math.max(...x.map((v, j) => Math.abs(v - y[j]!)));
      const vsPeft = gap(lp(a), p.prompt_logprobs);
      // The merged weights are rounded to bf16 once (W + scale * B A) where the unmerged path keeps
      // the adapter apart in its own bf16 matrices: logits here reach |30|, so the two differ in
      // the second decimal; the base model without the adapter is whole units away.
      expect(vsPeft, `${p.name}: vs peft`).toBeLessThan(0.15);
      expect(gap(lp(a), lp(b)), `${p.name}: vs the runtime's adapter`).toBeLessThan(0.15);
      expect(gap(lp(plain), p.prompt_logprobs), `${p.name}: the base model vs peft`).toBeGreaterThan(20 * vsPeft);
      const n = firstNearTie(p.greedy.margins, 0.1);
      expect(a.tokens.slice(0, n), `${p.name}: greedy tokens`).toEqual(p.greedy.ids.slice(0, n));
    }
  });

  it('int8_sq of the merged model: calibrated and scored on the merged float model, written to the staging folder only', async () => {
    const built = await build({ merge_lora: loraAdapter('tiny-b-lora-qv'), qformat: 'int8_sq' });
    expect(built.steps).toEqual(['check', 'dequantize', 'calibrate', 'quantize', 'write', 'verify']);
    expect(built.accuracy!.reference).toBe('tiny-b with tiny-b-lora-qv merged (written to bfloat16)');
    // int8_sq's bound in build-native.test.ts: against the model it quantized, the merged one.
    expect(built.accuracy!.top1_agreement).toBeGreaterThanOrEqual(0.92);
    // The merged copy lived in the staging folder and went with it.
    expect(existsSync(join(built.output_dir, '.dequantized'))).toBe(false);
    // Against the unmerged model it is a different model: the merge reached the quantized weights.
    const engine = await open(built.output_dir);
    const p = loraRefs().adapters.find((a) => a.name === 'tiny-b-lora-qv')!.prompts[0]!;
    expect((await run(engine, { tokens: p.prompt_ids, sampling: greedy, maxTokens: 1 })).tokens[0]).toBe(p.greedy.ids[0]);
  });

  it('refuses what it cannot merge, before writing anything', async () => {
    const before = leftovers(work);
    const refusals: [BuildSettingsInput, RegExp][] = [
      [{ merge_lora: join(work, 'missing') }, /LoRA adapter folder .*missing does not exist/],
      [{ merge_lora: loraAdapter('tiny-b-lora-all'), model_dir: checkpoint('tiny-a') }, /is for layer 2, but the model has 2 layers/],
      [{ merge_lora: loraAdapter('tiny-b-lora-all'), model_dir: awqCheckpoint('tiny-a', 32) }, /--merge_lora: .* is an AWQ checkpoint/],
      [{ merge_lora: loraAdapter('tiny-b-lora-all'), backend: 'trtllm' }, /--merge_lora is done by the native backend/],
    ];
    for (const [flags, message] of refusals) await expect(build(flags)).rejects.toThrow(message);
    expect(leftovers(work)).toEqual(before);
  });
});
