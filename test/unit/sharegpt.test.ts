// ShareGPT conversations as benchmark requests (src/bench/sharegpt.ts): the first two turns read
// from the file's shapes, vLLM's length filter and the model's limits applied, the same draw every
// run. The tokenizer is a parameter here (the server's /tokenize in use, tested in bench-cli).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readShareGpt, sampleShareGpt, type Conversation, type Conversations } from '../../src/bench/sharegpt.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-sharegpt-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};

const listed = ({ conversations, entries }: { conversations: Conversations; entries: number }) => ({
  conversations: Array.from({ length: conversations.length }, (_, k) => conversations.at(k)),
  entries,
});

// one "token" a word: lengths are easy to set
const words = (n: number, w = 'w') => Array.from({ length: n }, (_, i) => `${w}${i}`).join(' ');
const tokenize = async (text: string) => text.split(' ').filter(Boolean).map((_, i) => i + 1);

describe('readShareGpt', () => {
  it('keeps the first two turns of each conversation, under either key, and passes over the rest', () => {
    const p = file('mixed.json', JSON.stringify([
      { id: 'a', conversations: [{ from: 'human', value: 'q1' }, { from: 'gpt', value: 'a1' }, { from: 'human', value: 'q2' }] },
      { conversation: [{ from: 'human', value: 'q3' }, { from: 'gpt', value: 'a3' }] },
      { conversations: [{ from: 'human', value: 'alone' }] },
      { conversations: [{ from: 'human', value: 'q4' }, { from: 'gpt' }] },
      null,
      'text',
    ]));
    const expected = { conversations: [{ prompt: 'q1', completion: 'a1' }, { prompt: 'q3', completion: 'a3' }], entries: 6 };
    expect(listed(readShareGpt(p))).toEqual(expected);
    // Read a few bytes at a time (as a file past V8's longest string is, 16 MiB a read): the same.
    expect(listed(readShareGpt(p, 5))).toEqual(expected);
  });

  it("keeps where each conversation lies, not its text, and reads it from the file when it is drawn", () => {
    const text = JSON.stringify([
      { conversations: [{ from: 'human', value: 'é 漢字 first' }, { from: 'gpt', value: 'one' }] },
      { conversations: [{ from: 'human', value: 'second' }, { from: 'gpt', value: 'two' }] },
    ]);
    const p = file('positions.json', text);
    const { conversations } = readShareGpt(p, 7);
    expect(conversations.at(2)).toBeUndefined();
    // The same bytes changed after the scan: the text drawn is the file's now, so none was kept.
    fs.writeFileSync(p, text.replace('second', 'SECOND'));
    expect(conversations.at(1)).toEqual({ prompt: 'SECOND', completion: 'two' });
    expect(conversations.at(0)).toEqual({ prompt: 'é 漢字 first', completion: 'one' });
    // A file cut or moved meanwhile is named, with what to do.
    fs.writeFileSync(p, text.slice(0, 40));
    expect(() => conversations.at(1)).toThrow(/positions\.json changed while the benchmark read it \(conversation 2/);
    fs.rmSync(p);
    expect(() => conversations.at(0)).toThrow(/positions\.json cannot be read again/);
  });

  it('refuses a missing file, bad JSON and a file that is no list, naming the file and the format', () => {
    expect(() => readShareGpt(path.join(dir, 'none.json'))).toThrow(/--dataset .*none\.json does not exist or cannot be read/);
    expect(() => readShareGpt(file('bad.json', '[{"conversations": '))).toThrow(/bad\.json is not valid JSON/);
    expect(() => readShareGpt(file('obj.json', '{"conversations": []}'))).toThrow(/obj\.json holds no list of conversations/);
    let caught: unknown;
    try {
      readShareGpt(file('obj2.json', '{}'));
    } catch (err) {
      caught = err;
    }
    expect((caught as { hint?: string } | undefined)?.hint).toMatch(/a JSON list of \{"conversations": \[\{"from": "human"/);
  });
});

describe('sampleShareGpt', () => {
  const conv = (prompt: number, answer: number): Conversation => ({ prompt: words(prompt), completion: words(answer, 'a') });

  it("applies vLLM's bounds: both sides at least 4 tokens, the prompt at most 1,024 and both at most 2,048", async () => {
    const all = [conv(3, 10), conv(10, 3), conv(1025, 10), conv(1000, 1049), conv(4, 4), conv(1024, 1024)];
    const { requests, looked } = await sampleShareGpt(all, { needed: 10, tokenize });
    expect(looked).toBe(6);
    expect(requests.map((r) => [r.ids.length, r.outputTokens]).sort((a, b) => a[0] - b[0])).toEqual([
      [4, 4],
      [1024, 1024],
    ]);
  });

  it("a fixed output length replaces the answers' (short answers then count) and the model's limits apply", async () => {
    const all = [conv(10, 1), conv(50, 5), conv(100, 5)];
    const fixed = await sampleShareGpt(all, { needed: 10, tokenize, fixedOutput: 7 });
    expect(fixed.requests.map((r) => [r.ids.length, r.outputTokens]).sort((a, b) => a[0] - b[0])).toEqual([
      [10, 7],
      [50, 7],
      [100, 7],
    ]);
    const limited = await sampleShareGpt(all, { needed: 10, tokenize, fixedOutput: 7, maxInputLen: 60, maxModelLen: 50 });
    expect(limited.requests.map((r) => r.ids.length)).toEqual([10]); // 50 + 7 > 50, 100 > 60
  });

  it('draws in a seeded order, the same every run, and stops once it has enough', async () => {
    const all = Array.from({ length: 100 }, (_, i) => conv(10 + i, 20));
    const a = await sampleShareGpt(all, { needed: 5, tokenize });
    const b = await sampleShareGpt(all, { needed: 5, tokenize });
    expect(a.requests).toEqual(b.requests);
    expect(a.requests).toHaveLength(5);
    expect(a.looked).toBeLessThan(all.length); // a batch of 16, not the whole file
    const lengths = a.requests.map((r) => r.ids.length);
    expect(lengths).not.toEqual([10, 11, 12, 13, 14]); // shuffled, not the file's order
    const other = await sampleShareGpt(all, { needed: 5, tokenize, seed: 1 });
    expect(other.requests.map((r) => r.ids.length)).not.toEqual(lengths);
  });
});
