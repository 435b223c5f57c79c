// Merges what several `calibrate` calls of the native model tool return (each over a batch of the
// calibration text) into one ModelCalibration: maxima of maxima, sums weighted back from the means
// by the rows each call saw, and the sampled rows in text order. A Qwen3-MoE sparse layer's experts
// merge the same way, each weighted by the rows routed to it.
import type { CapturePoint } from '../../quant/smoothing.js';
import type { CaptureStats, ExpertCalibration, ModelCalibration } from '../../quant/layer.js';

export interface RawCapture {
  absMax: Float32Array;
  absMean: Float32Array;
  samples: Float32Array;
  sampleRows: number;
  cols: number;
  /** Rows the statistics are over: every token for a layer input, the routed ones for an expert's. */
  rows: number;
}

/** One expert's inputs: its gate/up_proj's (mlp_in) and its down_proj's (down_in). */
export type RawExpert = Record<'mlp_in' | 'down_in', RawCapture>;

export type RawLayer = Record<CapturePoint, RawCapture> & { kAmax: number; vAmax: number; vAbsMax: Float32Array; experts?: RawExpert[] };

interface MergedCapture {
  cols: number;
  absMax: Float32Array;
  /** Sum of |x| per channel (the native side reports means; weighted back by row counts). */
  absSum: Float64Array;
  rows: Float32Array[];
  /** Rows the sums are over. */
  count: number;
}

interface MergedLayer extends Record<CapturePoint, MergedCapture> {
  kAmax: number;
  vAmax: number;
  vAbsMax: Float32Array;
  experts: Record<'mlp_in' | 'down_in', MergedCapture>[];
}

export interface Merged {
  tokens: number;
  layers: MergedLayer[];
  head: MergedCapture;
}

const points: CapturePoint[] = ['attn_in', 'o_in', 'mlp_in', 'down_in'];

const emptyCapture = (cols: number): MergedCapture => ({ cols, absMax: new Float32Array(cols), absSum: new Float64Array(cols), rows: [], count: 0 });

/** rows: how many rows raw's means are over (a layer input's: the call's tokens). */
function mergeCapture(c: MergedCapture, raw: RawCapture, rows: number): void {
  for (let k = 0; k < c.cols; k++) {
    c.absMax[k] = Math.max(c.absMax[k], raw.absMax[k]);
    c.absSum[k] += raw.absMean[k] * rows;
  }
  for (let r = 0; r < raw.sampleRows; r++) c.rows.push(raw.samples.subarray(r * c.cols, (r + 1) * c.cols));
  c.count += rows;
}

export function merge(into: Merged | undefined, layers: RawLayer[], head: RawCapture, tokens: number): Merged {
  const m: Merged = into ?? {
    tokens: 0,
    layers: layers.map((l) => ({
      kAmax: 0,
      vAmax: 0,
      vAbsMax: new Float32Array(l.vAbsMax.length),
      ...(Object.fromEntries(points.map((p) => [p, emptyCapture(l[p].cols)])) as unknown as Record<CapturePoint, MergedCapture>),
      experts: (l.experts ?? []).map((e) => ({ mlp_in: emptyCapture(e.mlp_in.cols), down_in: emptyCapture(e.down_in.cols) })),
    })),
    head: emptyCapture(head.cols),
  };
  layers.forEach((l, i) => {
    const dst = m.layers[i];
    dst.kAmax = Math.max(dst.kAmax, l.kAmax);
    dst.vAmax = Math.max(dst.vAmax, l.vAmax);
    for (let c = 0; c < dst.vAbsMax.length; c++) dst.vAbsMax[c] = Math.max(dst.vAbsMax[c], l.vAbsMax[c]);
    for (const p of points) mergeCapture(dst[p], l[p], tokens);
    (l.experts ?? []).forEach((e, x) => {
      mergeCapture(dst.experts[x].mlp_in, e.mlp_in, e.mlp_in.rows);
      mergeCapture(dst.experts[x].down_in, e.down_in, e.down_in.rows);
    });
  });
  mergeCapture(m.head, head, tokens);
  m.tokens += tokens;
  return m;
}

function stats(c: MergedCapture): CaptureStats {
  const n = Math.max(1, c.count);
  const data = new Float32Array(c.rows.length * c.cols);
  c.rows.forEach((row, r) => data.set(row, r * c.cols));
  return { absMax: c.absMax, absMean: Float32Array.from(c.absSum, (v) => v / n), samples: { data, rows: c.rows.length, cols: c.cols } };
}

export function finish(m: Merged): ModelCalibration {
  const layers = m.layers.map((l) => ({
    captures: { attn_in: stats(l.attn_in), o_in: stats(l.o_in), mlp_in: stats(l.mlp_in), down_in: stats(l.down_in) },
    kAmax: l.kAmax,
    vAmax: l.vAmax,
    vAbsMax: l.vAbsMax,
    ...(l.experts.length ? { experts: l.experts.map((e): ExpertCalibration => ({ tokens: e.mlp_in.count, gateUp: stats(e.mlp_in), down: stats(e.down_in) })) } : {}),
  }));
  return { layers, head: stats(m.head) };
}
