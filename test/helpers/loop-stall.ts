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

/**
 * The longest stretch of [from, to] in which no chunk arrived (`arrivals` ascending, the times a
 * stream's reader got its chunks): how long other streams went without a word while a request
 * was out. The stretches at both ends count: a stall that ends only with the request's answer
 * leaves no chunk after it.
 */
export function longestPause(arrivals: readonly number[], from: number, to: number): number {
  let last = from;
  let longest = 0;
  for (const at of arrivals) {
    if (at <= from) continue;
    if (at >= to) break;
    longest = Math.max(longest, at - last);
    last = at;
  }
  return Math.max(longest, to - last);
}
