// A small seeded generator (mulberry32) for what must repeat from run to run: benchmark arrival
// gaps, the order conversations are drawn in. Not for anything that needs to be unpredictable.

/** Uniform draws in [0, 1) from `seed`. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
