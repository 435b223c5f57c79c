// Long request texts are tokenized on a thread of their own (src/chat/tokenize-thread.ts): the
// ids must be exactly what the tokenizer gives on this thread (added tokens, shielded ranges,
// plain text, the post-processor's tokens), the event loop must keep running meanwhile, and a
// thread that cannot serve must cost nothing but the time: the text is then encoded here.
import { cpSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { LongTextTokenizer, OFF_LOOP_CHARS, tokenizeWorkerFile } from '../../src/chat/tokenize-thread.js';
import { Tokenizer } from '../../src/chat/tokenizer.js';
import { readTokenizerConfig, readTokenizerJson } from '../../src/chat/tokenizer-files.js';
import { tokenizerDir } from '../helpers/fixtures.js';
import { longestStall } from '../helpers/loop-stall.js';

const tok = Tokenizer.fromDir(tokenizerDir);
const opened: LongTextTokenizer[] = [];
/** offLoopChars 0: every text goes to the thread. */
const texts = (offLoopChars = 0, t: Tokenizer = tok, log?: (line: string) => void) => {
  const l = new LongTextTokenizer(t, { offLoopChars, log });
  opened.push(l);
  return l;
};
afterAll(async () => {
  for (const l of opened) await l.close();
});

const threadOf = (l: LongTextTokenizer) => (l as unknown as { thread: { worker?: Worker } }).thread;
const sample = 'Hello <|im_start|>user\nnaïve café — 你好世界 😀 <think>x</think>\n\n  12345 <|endoftext|>';

describe('long texts tokenized on a thread of their own', () => {
  it('runs where the compiled worker is (npm test builds it before the tests)', () => {
    expect(tokenizeWorkerFile()).toMatch(/dist[\\/]chat[\\/]tokenize-worker\.js$/);
  });

  it('gives the ids this thread gives: added tokens, shielded ranges, plain text, the post-processor', async () => {
    const l = texts();
    const shielded: [number, number][] = [[6, 24]];
    expect(await l.encode(sample)).toEqual(tok.encode(sample));
    expect(await l.encode(sample, { noSpecialIn: shielded })).toEqual(tok.encode(sample, { noSpecialIn: shielded }));
    expect(tok.encode(sample, { noSpecialIn: shielded })).not.toEqual(tok.encode(sample));
    const list = [sample, '', 'plain <|im_end|>', sample.repeat(3)];
    expect(await l.encodeAll(list, [{}, {}, { allowSpecial: false }, { noSpecialIn: shielded }])).toEqual([
      tok.encode(sample),
      [],
      tok.encode('plain <|im_end|>', { allowSpecial: false }),
      tok.encode(sample.repeat(3), { noSpecialIn: shielded }),
    ]);
    expect(await l.encodeAllWithSpecialTokens(list)).toEqual(list.map((t) => tok.encodeWithSpecialTokens(t)));
    expect(threadOf(l).worker, 'the thread did the work').toBeDefined();
  });

  it('keeps short texts on this thread, where they cost less than the trip', async () => {
    const l = texts(OFF_LOOP_CHARS);
    expect(await l.encodeAll(['a'.repeat(OFF_LOOP_CHARS / 2 - 1), 'b'.repeat(OFF_LOOP_CHARS / 2)])).toEqual([
      tok.encode('a'.repeat(OFF_LOOP_CHARS / 2 - 1)),
      tok.encode('b'.repeat(OFF_LOOP_CHARS / 2)),
    ]);
    expect(threadOf(l).worker).toBeUndefined();
  });

  it('encodes here where the thread cannot serve: a tokenizer not read from a folder, a thread that stopped, a tokenizer.json changed since', async () => {
    const inMemory = new Tokenizer(readTokenizerJson(tokenizerDir), readTokenizerConfig(tokenizerDir));
    const noFolder = texts(0, inMemory);
    expect(await noFolder.encode(sample)).toEqual(tok.encode(sample));
    expect(threadOf(noFolder)).toBeUndefined();

    const l = texts();
    await l.encode('warm');
    const long = sample.repeat(20_000);
    const out = l.encode(long);
    await threadOf(l).worker!.terminate();
    expect(await out).toEqual(tok.encode(long));
    // The next text starts a fresh thread.
    expect(await l.encode(sample)).toEqual(tok.encode(sample));
    expect(threadOf(l).worker).toBeDefined();

    // The thread reads the folder again: a tokenizer.json changed since the server read its own
    // (here only its time) is not taken for the same one; the server's tokenizer encodes, and says so once.
    const copy = mkdtempSync(join(tmpdir(), 'tokenizer-'));
    cpSync(tokenizerDir, copy, { recursive: true });
    const held = Tokenizer.fromDir(copy);
    const said: string[] = [];
    const stale = texts(0, held, (line) => said.push(line));
    utimesSync(join(copy, 'tokenizer.json'), new Date(), new Date(Date.now() + 60_000));
    expect(await stale.encode(sample)).toEqual(tok.encode(sample));
    expect(await stale.encode('again')).toEqual(tok.encode('again'));
    expect(said).toEqual([expect.stringMatching(/tokenized on the event loop instead \(said once\): .*tokenizer\.json changed after the server read it/)]);
    rmSync(copy, { recursive: true, force: true });
  });

  // Retried: a stall of the loop is also the scheduler's doing on a busy machine. A stall that is
  // the tokenizing's own comes back on every try.
  it('keeps the event loop free while a long text is tokenized', { retry: 2 }, async () => {
    const l = texts(OFF_LOOP_CHARS);
    await l.encode('x'.repeat(OFF_LOOP_CHARS)); // (the thread started, its tokenizer read)
    const long = sample.repeat(Math.ceil(2e6 / sample.length));
    // The premise: on this thread the same text holds the loop for all of its encoding.
    const t0 = performance.now();
    const expected = tok.encode(long);
    const here = performance.now() - t0;
    expect(here).toBeGreaterThan(100);
    const { result, took, maxGap } = await longestStall(() => l.encode(long));
    expect(result).toEqual(expected);
    // What is left on this thread is the ids' copy into an array.
    expect(maxGap, `longest stall ${maxGap.toFixed(1)} ms of ${took.toFixed(0)} ms (${here.toFixed(0)} ms on this thread)`).toBeLessThan(here / 4);
  });
});
