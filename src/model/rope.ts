// Rotary-embedding frequencies, computed as transformers computes them (default and YaRN),
// in float32 like torch, so the runtime only multiplies positions by a table.

export interface RopeSpec {
  headDim: number;
  theta: number;
  type: string;
  factor: number;
  originalMaxPositionEmbeddings: number;
  betaFast?: number;
  betaSlow?: number;
  attentionFactor?: number;
  mscale?: number;
  mscaleAllDim?: number;
  truncate?: boolean;
}

const f32 = Math.fround;

/** base ** (2i / dim) for i < dim/2, each step in float32 as torch does it. */
function posFreqs(dim: number, base: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < dim; i += 2) out.push(f32(Math.pow(f32(base), f32(f32(i) / dim))));
  return out;
}

function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

export function ropeTables(spec: RopeSpec): { invFreq: number[]; attentionScaling: number } {
  const dim = spec.headDim;
  const freqs = posFreqs(dim, spec.theta);
  if (spec.type !== 'yarn') return { invFreq: freqs.map((p) => f32(1 / p)), attentionScaling: 1 };

  const factor = spec.factor;
  let attentionFactor = spec.attentionFactor;
  if (attentionFactor === undefined) {
    attentionFactor =
      spec.mscale && spec.mscaleAllDim
        ? yarnMscale(factor, spec.mscale) / yarnMscale(factor, spec.mscaleAllDim)
        : yarnMscale(factor);
  }
  const betaFast = spec.betaFast || 32;
  const betaSlow = spec.betaSlow || 1;
  const correctionDim = (rotations: number) =>
    (dim * Math.log(spec.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(spec.theta));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (spec.truncate ?? true) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const invFreq = freqs.map((p, i) => {
    const ramp = Math.min(1, Math.max(0, f32(f32(i - low) / f32(high - low))));
    const extrapolationFactor = f32(1 - ramp);
    const extrapolation = f32(1 / p);
    const interpolation = f32(1 / f32(factor * p));
    return f32(f32(interpolation * f32(1 - extrapolationFactor)) + f32(extrapolation * extrapolationFactor));
  });
  return { invFreq, attentionScaling: attentionFactor };
}
