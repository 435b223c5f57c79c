// Each CPU kernel level against its scalar twin (native/src/addon/kernel_tests.cpp runs them on
// random data), and the addon's load probe.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAddon, probeAddon } from '../../src/engine/index.js';
import { GrpstError, ExitCode } from '../../src/util/errors.js';

const levels = probeAddon().cpuKernels;

describe('CPU kernels', () => {
  it('include the scalar fallback on every machine', () => {
    expect(levels).toContain('scalar');
    expect(levels[levels.length - 1]).toBe('scalar');
  });

  it.each(levels)('%s agrees with the scalar twin and is batch-invariant', (level) => {
    const r = loadAddon().kernelSelfTest(level);
    expect(r.gemmBf16).toBeLessThan(1e-5);
    expect(r.gemmBatchInvariant).toBe(true);
    expect(r.attentionF32).toBeLessThan(1e-5);
    expect(r.attentionBf16).toBeLessThan(1e-5);
    // Quantized KV pools: widened in the inner loops like bf16, scales applied per score / probability.
    expect(r.attentionFp8).toBeLessThan(1e-5);
    expect(r.attentionInt8).toBeLessThan(1e-5);
    expect(r.attentionQuantVsFloat).toBeLessThan(1e-5);
    // Against the definition in double precision: the online softmax across key tiles, rows and
    // blocks straddling a tile's edge (fp32 sums over up to 700 keys: well inside 1e-5).
    expect(r.attentionVsDefinition).toBeLessThan(1e-5);
    expect(r.kvQuantRounding).toBe(0);
    expect(r.attentionRowInvariant).toBe(true);
    expect(r.rowKernels).toBeLessThan(1e-5);
    expect(r.maxSumExp).toBeLessThan(1e-6);
    expect(r.argmaxMismatches).toBe(0);
    // int8_wo / fp8 decode rows (weights widened in registers) give the bits of the batched path
    expect(r.quantDecodeRowsInvariant).toBe(true);
    // fp8's e4m3 rounding and int8_sq's per-token int8 of the activations: the scalar definition's bits
    expect(r.activationQuantizersExact).toBe(true);
    // int8_sq's exact int32 products (AMX-INT8 tiles on the amx level): the scalar level's y, bit for bit
    expect(r.int8SqExact).toBe(true);
    // int8_wo (on amx: x's three int8 parts multiplied exactly in int32): within fp32's precision
    expect(r.int8WoVsScalar).toBeLessThan(1e-5);
    // fp8 (bf16 dot products on avx512 / amx): every e4m3 code's product exact, sums within order
    expect(r.fp8VsScalar).toBeLessThan(1e-5);
    // int4 (the nibbles' order on avx512; on amx x's three int8 parts, exact int32 sums per group):
    // within fp32's precision
    expect(r.int4VsScalar).toBeLessThan(1e-5);
    // projections of one x with different int4 operands in one call: each weight's own bits
    expect(r.int4SharedOperands).toBe(true);
  });

  it('refuse a level name they do not know', () => {
    expect(() => loadAddon().kernelSelfTest('sse9')).toThrow(/amx, avx512, avx2 or scalar/);
  });
});

describe('addon probe', () => {
  it('reports the version and kernel levels from a child process', () => {
    const p = probeAddon();
    expect(p.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(p.bestCpuKernels).toBe(levels[0]);
    expect(typeof p.cuda).toBe('boolean');
  });

  it('turns a broken binary into a clear error instead of a crash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grpst-probe-'));
    const bad = join(dir, 'grpst_native.node');
    writeFileSync(bad, 'not an ELF file');
    let err: unknown;
    try {
      probeAddon(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GrpstError);
    expect((err as GrpstError).exitCode).toBe(ExitCode.missingTool);
    expect((err as GrpstError).message).toContain(bad);
    expect((err as GrpstError).hint).toMatch(/npm run build:native/);
  });

  it('names a missing binary and how to build it', () => {
    expect(() => probeAddon('/nonexistent/grpst_native.node')).toThrow(/not built/);
  });
});

describe('memory bandwidth probe', () => {
  it('measures a plausible read bandwidth', () => {
    const bw = loadAddon().measureMemoryBandwidth(64 << 20, 2, 1);
    expect(bw).toBeGreaterThan(1e9);
    expect(bw).toBeLessThan(1e13);
  });
});
