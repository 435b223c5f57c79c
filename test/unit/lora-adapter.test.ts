// Reading PEFT LoRA adapter folders (src/engine/lora.ts): the scales PEFT would use (lora_alpha / r,
// rsLoRA, rank_pattern and alpha_pattern), every float dtype, and a clear refusal, naming the file
// and the fix, for what the runtime cannot serve as PEFT would.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loraShapeOf, patternKey, readLoraAdapter, type LoraShape } from '../../src/engine/lora.js';
import { parseHfConfig } from '../../src/model/config.js';
import { readSafetensorsHeader, writeSafetensors } from '../../src/model/safetensors.js';
import { checkpoint } from '../helpers/fixtures.js';
import { loraAdapter } from '../helpers/lora-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'grpst-lora-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const shape: LoraShape = loraShapeOf(parseHfConfig(JSON.parse(readFileSync(join(checkpoint('tiny-b'), 'config.json'), 'utf8'))).model);
let copies = 0;
/** A copy of an adapter fixture, with its config edited by `edit`. */
function copyOf(name: 'tiny-b-lora-all' | 'tiny-b-lora-qv', edit: (config: Record<string, unknown>) => void = () => {}): string {
  const dir = join(work, `copy-${copies++}`);
  cpSync(loraAdapter(name), dir, { recursive: true });
  const file = join(dir, 'adapter_config.json');
  const config = JSON.parse(readFileSync(file, 'utf8'));
  edit(config);
  writeFileSync(file, JSON.stringify(config));
  return dir;
}

describe('reading an adapter', () => {
  it("gives each projection PEFT's scale: lora_alpha / r, alpha / sqrt(r) with rsLoRA, the patterns' values where they match", () => {
    const all = readLoraAdapter(loraAdapter('tiny-b-lora-all'), shape);
    expect(all.deltas).toHaveLength(3 * 7);
    expect(new Set(all.deltas.map((d) => d.scale))).toEqual(new Set([16 / 8]));
    const qv = readLoraAdapter(loraAdapter('tiny-b-lora-qv'), shape);
    const scaleOf = (target: number) => [...new Set(qv.deltas.filter((d) => d.target === target).map((d) => d.scale))];
    expect(scaleOf(0)).toEqual([8 / Math.sqrt(4)]); // q_proj: r 4, alpha 8
    expect(scaleOf(2)).toEqual([8 / Math.sqrt(4)]); // v_proj
    expect(scaleOf(6)).toEqual([6 / Math.sqrt(2)]); // down_proj: rank_pattern 2, alpha_pattern 6
    expect(qv.deltas.filter((d) => d.target === 6).every((d) => d.rank === 2 && d.a.length === 2 * shape.intermediate && d.b.length === shape.hidden * 2)).toBe(true);
  });

  it("matches pattern keys as PEFT does: a dotted tail of the module's name, as a regular expression", () => {
    expect(patternKey({ down_proj: 2 }, 'model.layers.0.mlp.down_proj')).toBe('down_proj');
    expect(patternKey({ 'layers.1.mlp.down_proj': 2 }, 'model.layers.11.mlp.down_proj')).toBeUndefined();
    expect(patternKey({ 'layers\\.1\\d\\..*proj': 2 }, 'model.layers.11.mlp.down_proj')).toBe('layers\\.1\\d\\..*proj');
    expect(patternKey({ proj: 2 }, 'model.layers.0.mlp.down_proj')).toBeUndefined();
  });

  it('reads F32 and F16 weights as it reads BF16 ones', () => {
    const bf16 = readLoraAdapter(loraAdapter('tiny-b-lora-qv'), shape);
    for (const dtype of ['F32', 'F16'] as const) {
      const dir = copyOf('tiny-b-lora-qv');
      const file = join(dir, 'adapter_model.safetensors');
      const raw = readFileSync(file);
      const tensors = readSafetensorsHeader(file).tensors.map((t) => {
        const n = t.shape.reduce((a, b) => a * b, 1);
        const out = Buffer.alloc(n * (dtype === 'F32' ? 4 : 2));
        for (let i = 0; i < n; i++) {
          const f = new Float32Array(new Uint32Array([raw.readUInt16LE(t.offset + 2 * i) << 16]).buffer)[0]!;
          if (dtype === 'F32') out.writeFloatLE(f, 4 * i);
          else out.writeUInt16LE(toHalf(f), 2 * i);
        }
        return { name: t.name, dtype, shape: t.shape, data: out };
      });
      writeSafetensors(file, tensors);
      const got = readLoraAdapter(dir, shape);
      got.deltas.forEach((d, i) => {
        const want = bf16.deltas[i]!;
        expect(d.scale).toBe(want.scale);
        const tol = dtype === 'F32' ? 0 : 2e-3;
        for (const key of ['a', 'b'] as const) for (let j = 0; j < d[key].length; j++) expect(Math.abs(d[key][j]! - want[key][j]!)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[key][j]!)));
      });
    }
  });
});

// Round to nearest fp16 (the test's values are normal numbers well inside its range).
function toHalf(f: number): number {
  const sign = f < 0 ? 0x8000 : 0;
  const a = Math.abs(f);
  if (a === 0) return sign;
  let e = Math.floor(Math.log2(a));
  let m = Math.round((a / 2 ** e - 1) * 1024);
  if (m === 1024) (m = 0), e++;
  if (e < -14) return sign | Math.round(a / 2 ** -24);
  return sign | ((e + 15) << 10) | m;
}

describe('refusals name the problem and the fix', () => {
  it.each([
    ['a DoRA adapter', (c: Record<string, unknown>) => (c.use_dora = true), /DoRA adapter \(use_dora\) is not served/],
    ['modules_to_save', (c: Record<string, unknown>) => (c.modules_to_save = ['lm_head']), /modules_to_save \(lm_head\)/],
    ['another PEFT method', (c: Record<string, unknown>) => (c.peft_type = 'IA3'), /peft_type is "IA3"; only LoRA adapters/],
    ['trained biases', (c: Record<string, unknown>) => (c.bias = 'all'), /bias "all"/],
    ['a rank the weights do not have', (c: Record<string, unknown>) => (c.r = 16), /has rank 8 but adapter_config.json gives it 16/],
  ])('%s', (_what, edit, message) => {
    expect(() => readLoraAdapter(copyOf('tiny-b-lora-all', edit), shape)).toThrow(message);
  });

  it('a rank above max_lora_rank, saying what to raise it to', () => {
    expect(() => readLoraAdapter(loraAdapter('tiny-b-lora-all'), shape, { maxRank: 4 })).toThrow(/rank 8, above max_lora_rank 4/);
    try {
      readLoraAdapter(loraAdapter('tiny-b-lora-all'), shape, { maxRank: 4 });
    } catch (e) {
      expect((e as { hint?: string }).hint).toBe('raise max_lora_rank to 8 or more');
    }
    expect(readLoraAdapter(loraAdapter('tiny-b-lora-all'), shape, { maxRank: 8 }).rank).toBe(8);
  });

  it('a missing folder, config or weights file (a pickled adapter_model.bin is never loaded)', () => {
    expect(() => readLoraAdapter(join(work, 'nowhere'), shape)).toThrow(/LoRA adapter folder .*nowhere does not exist/);
    const noWeights = copyOf('tiny-b-lora-all');
    rmSync(join(noWeights, 'adapter_model.safetensors'));
    writeFileSync(join(noWeights, 'adapter_model.bin'), 'pickle');
    try {
      readLoraAdapter(noWeights, shape);
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).toMatch(/has no adapter_model.safetensors/);
      expect((e as { hint?: string }).hint).toMatch(/adapter_model.bin \(a pickle, which is never loaded\): save it again with safe_serialization=True/);
    }
    const noConfig = copyOf('tiny-b-lora-all');
    rmSync(join(noConfig, 'adapter_config.json'));
    expect(() => readLoraAdapter(noConfig, shape)).toThrow(/has no adapter_config.json/);
  });

  it('weights of a module it cannot adapt, or half of a pair', () => {
    const head = copyOf('tiny-b-lora-all');
    const file = join(head, 'adapter_model.safetensors');
    const raw = readFileSync(file);
    const tensors = readSafetensorsHeader(file).tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: raw.subarray(t.offset, t.offset + t.nbytes) }));
    writeSafetensors(file, [...tensors, { name: 'base_model.model.lm_head.lora_A.weight', dtype: 'BF16', shape: [8, 96], data: new Uint8Array(8 * 96 * 2) }]);
    expect(() => readLoraAdapter(head, shape)).toThrow(/lm_head\.lora_A\.weight is not a LoRA weight of a Qwen3 projection/);
    const half = copyOf('tiny-b-lora-all');
    writeSafetensors(join(half, 'adapter_model.safetensors'), tensors.filter((t) => t.name !== 'base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight'));
    expect(() => readLoraAdapter(half, shape)).toThrow(/model\.layers\.1\.self_attn\.k_proj has lora_A but not lora_B/);
  });
});
