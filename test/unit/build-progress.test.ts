import { describe, expect, it } from 'vitest';
import { createReporter } from '../../src/build/progress.js';

function fakeStream(props: { isTTY?: boolean; columns?: number }): NodeJS.WriteStream & { text: string } {
  const s = { ...props, text: '', write(chunk: string) { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

describe('build progress off a terminal', () => {
  it('prints a line per phase, per tenth of progress and at the end, with elapsed time', () => {
    let now = 0;
    const stream = fakeStream({ isTTY: false });
    const r = createReporter({ stream, now: () => now });
    r.phase('quantize', 'int8_wo');
    for (let i = 1; i <= 40; i++) {
      now += 250;
      r.progress(i / 40, `layer ${i}/40`);
    }
    r.done('12 MiB');
    const lines = stream.text.trim().split('\n');
    expect(lines[0]).toBe('[   0.0s] quantize: int8_wo');
    expect(lines.filter((l) => /quantize \d+%/.test(l))).toHaveLength(10);
    expect(lines).toContain('[   5.0s] quantize 50%  layer 20/40');
    expect(lines.at(-1)).toBe('[  10.0s] quantize done in 10.0s: 12 MiB');
  });

  it('keeps tool output to one line every 30 s', () => {
    let now = 0;
    const stream = fakeStream({ isTTY: false });
    const r = createReporter({ stream, now: () => now });
    r.phase('engine');
    for (let i = 0; i < 100; i++) {
      now += 1000;
      r.progress(undefined, `[TRT] line ${i}`);
    }
    expect(stream.text.split('\n').filter((l) => l.includes('[TRT]'))).toHaveLength(3);
  });

  it('uses plain lines on a terminal that reports no width', () => {
    const stream = fakeStream({ isTTY: true, columns: 0 });
    const r = createReporter({ stream, now: () => 0 });
    r.phase('check');
    expect(stream.text).toBe('[   0.0s] check\n');
  });
});
