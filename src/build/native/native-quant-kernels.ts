// src/quant/kernels.ts's passes over the runtime's native twins (native/src/addon/quant_passes.cpp
// and quant_tools.cpp): the same bytes as the TypeScript, on every core.
import type { QuantKernels } from '../../quant/kernels.js';

/** The addon's functions behind QuantKernels (flat arrays and shapes, as Node-API takes them). */
export interface NativeQuantPasses {
  decodeBf16(bytes: Uint8Array): Float32Array;
  quantizeInt4(w: Float32Array, rows: number, cols: number, group: number): { packed: Uint8Array; scales: Float32Array };
  quantizeInt8Rows(w: Float32Array, rows: number, cols: number): { q: Int8Array; scales: Float32Array };
  quantizeE4m3(values: Float32Array, scale: number): Uint8Array;
  absMax(values: Float32Array): number;
  awqWeightMeanInto(w: Float32Array, rows: number, cols: number, group: number, sum: Float64Array): void;
  columnAbsMaxInto(w: Float32Array, rows: number, cols: number, into: Float32Array): void;
  scaleColumns(w: Float32Array, rows: number, cols: number, s: Float32Array): void;
  divideRows(w: Float32Array, rows: number, cols: number, s: Float32Array, rowOf: Int32Array | null): void;
  rowDots(x: Float32Array, rows: number, cols: number, w: Float32Array, wRows: number, wCols: number): Float64Array;
}

const passNames: (keyof NativeQuantPasses)[] = ['decodeBf16', 'quantizeInt4', 'quantizeInt8Rows', 'quantizeE4m3', 'absMax', 'awqWeightMeanInto', 'columnAbsMaxInto', 'scaleColumns', 'divideRows', 'rowDots'];

/** The native kernels, or undefined for an addon built before them (the TypeScript ones then run). */
export function nativeQuantKernels(addon: Partial<NativeQuantPasses>): QuantKernels | undefined {
  if (!passNames.every((n) => typeof addon[n] === 'function')) return undefined;
  const n = addon as NativeQuantPasses;
  return {
    decodeBf16: (bytes) => n.decodeBf16(bytes),
    int4: (w, group) => {
      const { packed, scales } = n.quantizeInt4(w.data, w.rows, w.cols, group);
      return { packed, scales, zeros: new Uint8Array(scales.length).fill(8), rows: w.rows, cols: w.cols, group };
    },
    int8Rows: (w) => n.quantizeInt8Rows(w.data, w.rows, w.cols),
    e4m3: (values, scale) => n.quantizeE4m3(values, scale),
    absMax: (a) => n.absMax(a),
    weightMeanInto: (w, group, sum) => n.awqWeightMeanInto(w.data, w.rows, w.cols, group, sum),
    columnAbsMaxInto: (w, into) => n.columnAbsMaxInto(w.data, w.rows, w.cols, into),
    scaleColumns: (w, s) => n.scaleColumns(w.data, w.rows, w.cols, s),
    divideRows: (w, s, rowOf) => n.divideRows(w.data, w.rows, w.cols, s, rowOf ?? null),
    rowDots: (x, w) => n.rowDots(x.data, x.rows, x.cols, w.data, w.rows, w.cols),
  };
}
