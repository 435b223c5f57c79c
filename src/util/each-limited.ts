// Runs task(i) for i = 0..count-1 with at most `limit` at once (lanes that each take the next
// index). After a task fails no lane takes another; the first failure is thrown once every lane
// has stopped, so nothing the tasks started still runs when the caller goes on.
export async function eachLimited(count: number, limit: number, task: (i: number) => Promise<void>, onFirstError?: (e: unknown) => void): Promise<void> {
  let next = 0;
  let failed = false;
  let first: unknown;
  const lane = async () => {
    while (!failed && next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (e) {
        if (!failed) {
          failed = true;
          first = e;
          onFirstError?.(e);
        }
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), count) }, lane));
  if (failed) throw first;
}
