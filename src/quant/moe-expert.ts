// One Qwen3-MoE expert (gate_proj, up_proj, down_proj) quantized from its own activation statistics
// (expert-stats.ts says which):
//   int4_awq / int8_sq: AWQ's search / SmoothQuant's factors s for gate/up_proj on the expert's
//     input, and for down_proj on its down_proj input. gate/up's cannot fold into
//     post_attention_layernorm, whose output every expert and the router read, so the engine
//     carries 1 / s as the expert's pre_quant_scale, multiplied into its input rows at run time;
//     down_proj's fold into up_proj's rows (silu(gate) * up is linear in up), as in a dense layer.
//     Both are searched on the original weights before either is applied (AutoAWQ's order).
//   fp8: static input scales from the expert's own amax (gate/up one, shared, with one weight scale
//     as a fused gate/up kernel needs; down_proj its own).
//   int8_wo / int4_rtn: no statistics.
import { searchFactors, quantizeLinear, type LayerQuantOptions, type LayerFormat } from './layer.js';
import { referenceKernels } from './kernels.js';
import type { ExpertStats, ExpertWeights } from './expert-stats.js';
import type { QuantizedLinear } from './types.js';

export interface QuantizedExpert {
  gate: QuantizedLinear;
  up: QuantizedLinear;
  down: QuantizedLinear;
  /** [hidden]: 1 / the gate/up factors, absent where there are none (or all are 1: round-to-nearest won). */
  preQuantScale?: Float32Array;
}

export type ExpertQuantOptions = Pick<LayerQuantOptions, 'group' | 'alpha' | 'awqLoss' | 'kernels'> & { format: LayerFormat };

/** Expert `prefix` (model.layers.L.mlp.experts.E); its weights are modified in place. */
export function quantizeExpert(prefix: string, w: ExpertWeights, stats: ExpertStats | undefined, opts: ExpertQuantOptions): QuantizedExpert {
  const k = opts.kernels ?? referenceKernels;
  const { format } = opts;
  if ((format === 'int4_awq' || format === 'fp8' || format === 'int8_sq') && !stats) throw new Error(`${prefix}: ${format} needs the expert's activation statistics`);
  let preQuantScale: Float32Array | undefined;
  if (format === 'int4_awq' || format === 'int8_sq') {
    const gateUp = searchFactors(format, stats!.gateUp, [w.gate, w.up], opts).scales;
    const down = searchFactors(format, stats!.down, [w.down], opts).scales;
    k.scaleColumns(w.gate, gateUp);
    k.scaleColumns(w.up, gateUp);
    k.scaleColumns(w.down, down);
    k.divideRows(w.up, down);
    if (gateUp.some((s) => s !== 1)) preQuantScale = Float32Array.from(gateUp, (s) => 1 / s);
  }
  const fp8 = format === 'fp8';
  const gateUpWeightAmax = fp8 ? Math.max(k.absMax(w.gate.data), k.absMax(w.up.data)) : 0;
  const gateUpInputAmax = fp8 ? k.absMax(stats!.gateUp.absMax) : 0;
  const downWeightAmax = fp8 ? k.absMax(w.down.data) : 0;
  const downInputAmax = fp8 ? k.absMax(stats!.down.absMax) : 0;
  return {
    gate: quantizeLinear(format, `${prefix}.gate_proj`, w.gate, opts.group, gateUpWeightAmax, gateUpInputAmax, k),
    up: quantizeLinear(format, `${prefix}.up_proj`, w.up, opts.group, gateUpWeightAmax, gateUpInputAmax, k),
    down: quantizeLinear(format, `${prefix}.down_proj`, w.down, opts.group, downWeightAmax, downInputAmax, k),
    ...(preQuantScale ? { preQuantScale } : {}),
  };
}
