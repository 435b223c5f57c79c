// Tensor-parallel sharding of packed linears, format by format: the ranks' slices put back
// together (rows stacked, or columns side by side) give the single-rank tensors byte for byte;
// per-tensor scales are the same on every rank; sizes that cannot be split are refused with a fix.
import { describe, expect, it } from 'vitest';
import { checkInt4Split, checkTpSize, rankShard, shardLinear, sliceColumns, sliceRows } from '../../src/build/shard.js';
import { dtypeBytes } from '../../src/model/safetensors.js';
import { quantizeFp8 } from '../../src/quant/fp8.js';
import { int4Linear, quantizeInt4Symmetric } from '../../src/quant/int4.js';
import { quantizeInt8Sq } from '../../src/quant/int8-sq.js';
import { quantizeInt8Wo } from '../../src/quant/int8-wo.js';
import { encodeFloats } from '../../src/quant/numeric.js';
import type { Matrix, PackedTensor, QuantizedLinear } from '../../src/quant/types.js';
import type { ModelConfig } from '../../src/model/config.js';
import { GrpstError } from '../../src/util/errors.js';

function matrix(rows: number, cols: number, seed: number): Matrix {
  let s = seed;
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = ((s >>> 8) / 2 ** 24 - 0.5) * (1 + (i % 7));
  }
  return { data, rows, cols };
}

function bf16Linear(name: string, w: Matrix): QuantizedLinear {
  const t: PackedTensor = { name: `${name}.weight`, dtype: 'BF16', shape: [w.rows, w.cols], data: encodeFloats(w.data, 'BF16') };
  return { entry: { format: 'float', out_features: w.rows, in_features: w.cols, tensors: { weight: t.name } }, tensors: [t] };
}

const formats: Record<string, (name: string, w: Matrix) => QuantizedLinear> = {
  bf16: bf16Linear,
  int8_wo: (n, w) => quantizeInt8Wo(n, w),
  int4: (n, w) => int4Linear(n, quantizeInt4Symmetric(w, 16)),
  fp8: (n, w) => quantizeFp8(n, w, 3.5, 2.25),
  int8_sq: (n, w) => quantizeInt8Sq(n, w),
};

/** Stacks the ranks' slices back: rows one after another, or each row's columns side by side. */
function reassemble(parts: PackedTensor[], how: 'rows' | 'columns'): Uint8Array {
  if (how === 'rows') return Buffer.concat(parts.map((p) => p.data));
  const rows = parts[0].shape[0];
  const rowBytes = parts.map((p) => p.data.byteLength / rows);
  const out = new Uint8Array(parts.reduce((a, p) => a + p.data.byteLength, 0));
  let o = 0;
  for (let r = 0; r < rows; r++) {
    parts.forEach((p, k) => {
      out.set(p.data.subarray(r * rowBytes[k], (r + 1) * rowBytes[k]), o);
      o += rowBytes[k];
    });
  }
  return out;
}

describe.each(Object.keys(formats))('%s linears', (format) => {
  const w = matrix(64, 96, format.length * 7 + 1);
  const whole = formats[format]('model.layers.0.mlp.up_proj', w);

  it.each([
    ['rows', 2],
    ['rows', 4],
    ['columns', 2],
    ['columns', 3],
  ] as const)('split by %s across %d ranks reassembles exactly', (split, tp) => {
    const shards = Array.from({ length: tp }, (_, r) => shardLinear('m', whole, split, r, tp));
    for (const s of shards) {
      expect(s.entry.format).toBe(whole.entry.format);
      expect(s.entry.out_features).toBe(split === 'rows' ? 64 / tp : 64);
      expect(s.entry.in_features).toBe(split === 'columns' ? 96 / tp : 96);
      expect(Object.keys(s.entry.tensors)).toEqual(Object.keys(whole.entry.tensors));
    }
    for (const [role, name] of Object.entries(whole.entry.tensors)) {
      const original = whole.tensors.find((t) => t.name === name)!;
      const parts = shards.map((s) => s.tensors.find((t) => t.name === name)!);
      for (const p of parts) expect(p.data.byteLength, `${role}: bytes match the shape`).toBe(p.shape.reduce((a, b) => a * b, 1) * dtypeBytes[p.dtype]);
      const perTensor = role === 'weight_scale' || role === 'input_scale';
      // Per-output-channel scales (int8) apply to whole rows: every column slice keeps all of them.
      const perRow = (format === 'int8_wo' || format === 'int8_sq') && role === 'scales';
      if (perTensor || (perRow && split === 'columns')) {
        for (const p of parts) expect(Buffer.from(p.data).equals(Buffer.from(original.data)), `${role} copied whole`).toBe(true);
      } else {
        expect(Buffer.from(reassemble(parts, split)).equals(Buffer.from(original.data)), `${role} reassembled`).toBe(true);
      }
    }
  });
});

describe('tensor slices', () => {
  it('rows of a 1-D tensor and columns of a packed int4 weight', () => {
    const t: PackedTensor = { name: 's', dtype: 'F32', shape: [8], data: new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]).buffer) };
    expect([...new Float32Array(sliceRows(t, 1, 4).data.slice().buffer)]).toEqual([2, 3]);
    const q: PackedTensor = { name: 'q', dtype: 'U8', shape: [2, 4], data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]) };
    expect([...sliceColumns(q, 1, 2).data]).toEqual([3, 4, 7, 8]);
    expect(sliceColumns(q, 1, 2).shape).toEqual([2, 2]);
  });

  it('int4 groups that would straddle a rank boundary are refused, naming block sizes that fit', () => {
    const w = matrix(32, 96, 5);
    const q = int4Linear('model.layers.0.mlp.down_proj', quantizeInt4Symmetric(w, 32));
    let err: unknown;
    try {
      shardLinear('model.layers.0.mlp.down_proj', q, 'columns', 0, 2);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GrpstError);
    expect((err as GrpstError).message).toContain('int4 groups of 32 would straddle the tensor-parallel split of model.layers.0.mlp.down_proj');
    expect((err as GrpstError).hint).toBe('build with an --awq_block_size that divides 48: 16');
    // Rows split freely: groups run along the input.
    expect(() => shardLinear('m', q, 'rows', 1, 2)).not.toThrow();
  });
});

const model = (over: Partial<ModelConfig>): ModelConfig =>
  ({ hiddenSize: 96, intermediateSize: 192, numLayers: 3, numHeads: 6, numKvHeads: 2, headDim: 24, vocabSize: 151936, ...over }) as ModelConfig;

describe('tp_size against the model', () => {
  it('accepts sizes dividing heads, KV heads, MLP channels and the vocabulary', () => {
    expect(() => checkTpSize(model({}), 2)).not.toThrow();
    expect(rankShard(model({}), 2, 1)).toEqual({ num_heads: 3, num_kv_heads: 1, intermediate_size: 96, vocab_start: 75968, vocab_end: 151936 });
  });

  it('refuses one that does not, and names the sizes that work', () => {
    let err: GrpstError | undefined;
    try {
      checkTpSize(model({}), 4);
    } catch (e) {
      err = e as GrpstError;
    }
    expect(err?.message).toBe('tp_size 4 does not divide num_key_value_heads 2: every rank must hold the same number of heads');
    expect(err?.hint).toContain(': 1, 2');
    expect(() => checkTpSize(model({ numKvHeads: 8, numHeads: 64, intermediateSize: 25600 }), 8)).not.toThrow();
    expect(() => checkTpSize(model({ numKvHeads: 8, numHeads: 12 }), 8)).toThrow(/does not divide num_attention_heads 12/);
  });

  it('checks int4 groups against every rank\'s columns before any work', () => {
    // tiny-a: o_proj reads 4 heads * 32 = 128 columns, down_proj 160.
    const tinyA = model({ hiddenSize: 64, intermediateSize: 160, numHeads: 4, numKvHeads: 2, headDim: 32 });
    expect(() => checkInt4Split(tinyA, 2, 16)).not.toThrow();
    expect(() => checkInt4Split(tinyA, 2, 32)).toThrow(/int4 groups of 32 would straddle the tensor-parallel split of down_proj: each of the 2 ranks holds 80 of its 160 input columns/);
  });
});
