// eachLimited: at most `limit` tasks at once; after a failure no new task starts, and the first
// failure is thrown only once every started task has ended.
import { describe, expect, it } from 'vitest';
import { eachLimited } from '../../src/util/each-limited.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('eachLimited', () => {
  it('runs every index with at most `limit` at once', async () => {
    let running = 0;
    let most = 0;
    const done: number[] = [];
    await eachLimited(10, 3, async (i) => {
      most = Math.max(most, ++running);
      await tick(5 + (i % 3));
      running--;
      done.push(i);
    });
    expect(most).toBe(3);
    expect(done.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('after a failure starts nothing new, waits for the started ones, and throws the first failure', async () => {
    const started: number[] = [];
    let slowEnded = false;
    let firstSeen: unknown;
    const run = eachLimited(
      20,
      2,
      async (i) => {
        started.push(i);
        if (i === 0) {
          await tick(30);
          slowEnded = true;
          return;
        }
        await tick(1);
        if (i === 2) throw new Error('two failed');
        if (i === 3) throw new Error('three failed too');
      },
      (e) => (firstSeen = e),
    );
    await expect(run).rejects.toThrow('two failed');
    expect(slowEnded).toBe(true);
    expect((firstSeen as Error).message).toBe('two failed');
    expect(Math.max(...started)).toBeLessThanOrEqual(3);
  });

  it('does nothing for no items', async () => {
    await expect(eachLimited(0, 4, async () => Promise.reject(new Error('never')))).resolves.toBeUndefined();
  });
});
