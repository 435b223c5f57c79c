// When each request of a rate-driven load run arrives, as `vllm bench serve` schedules them with
// --request-rate and --burstiness: gaps between arrivals drawn from a gamma distribution of shape
// `burstiness` and mean 1 / rate. Burstiness 1 is a Poisson process (exponential gaps); below 1
// the arrivals bunch into bursts with quiet stretches between them, above 1 they are more evenly
// spaced (the gaps' coefficient of variation is 1 / sqrt(burstiness)). A fixed seed makes every
// run of the same arguments send the same schedule.
import { mulberry32 } from '../util/seeded-random.js';

/**
 * Seconds from the run's start at which each of `n` requests arrives at `rate` per second on
 * average: the first at 0, then gamma gaps of shape `burstiness` and mean 1 / rate.
 */
export function arrivalTimes(n: number, rate: number, burstiness = 1, seed = 0x5eed): number[] {
  const uniform = mulberry32(seed);
  // burstiness 1 draws its exponential gaps directly (one uniform each), as the first version did
  const gap = burstiness === 1 ? () => -Math.log(1 - uniform()) : gammaSampler(burstiness, uniform);
  const scale = 1 / (rate * burstiness);
  const times: number[] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    if (i > 0) at += gap() * scale;
    times.push(at);
  }
  return times;
}

/**
 * Draws from Gamma(shape, 1): Marsaglia and Tsang's method (2000) for shape >= 1; below 1 a draw
 * of shape + 1 times U^(1 / shape), the standard boost, since the method needs shape >= 1.
 */
function gammaSampler(shape: number, uniform: () => number): () => number {
  const normal = () => {
    // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]
    const u = 1 - uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  const k = shape < 1 ? shape + 1 : shape;
  const d = k - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  const draw = () => {
    for (;;) {
      const x = normal();
      const v0 = 1 + c * x;
      if (v0 <= 0) continue;
      const v = v0 * v0 * v0;
      const u = 1 - uniform();
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
    }
  };
  return shape < 1 ? () => draw() * Math.pow(1 - uniform(), 1 / shape) : draw;
}
