// How long the event loop was held while `work` ran: a 1 ms interval notes the longest gap
// between its ticks, and the stretch from the last tick to the answer counts too (work done on
// this thread without a break would leave no tick to measure by).
export async function longestStall<T>(work: () => Promise<T>): Promise<{ result: T; took: number; maxGap: number }> {
  let last = performance.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 1);
  const t0 = performance.now();
  try {
    const result = await work();
    const end = performance.now();
    return { result, took: end - t0, maxGap: Math.max(maxGap, end - last) };
  } finally {
    clearInterval(timer);
  }
}
