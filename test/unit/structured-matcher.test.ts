// The native grammar matcher over the real Qwen3 vocabulary: token masks agree with matching
// the tokens' bytes one by one (multi-byte and partial UTF-8 tokens included), budgets always
// leave room to finish, the think block stays free text and closes on time, tool calls come
// out in Qwen3's format, and compiled grammars are cached.
import { describe, expect, it } from 'vitest';
import { ToolCallParser } from '../../src/parse/tool-calls.js';
import { nativeVocabulary, structuredAddon } from '../../src/structured/native.js';
import { SchemaError } from '../../src/structured/schema-errors.js';
import { imEnd, outputs, rng, sample, schemaGrammar, tokenizer, validator } from './structured-sample.js';

const ajv = validator();
const think = tokenizer.tokenToId('<think>')!;
const thinkEnd = tokenizer.tokenToId('</think>')!;
const toolOpen = tokenizer.tokenToId('<tool_call>')!;

const weather = {
  name: 'get_current_weather',
  parameters: {
    type: 'object',
    properties: { location: { type: 'string', description: 'City and state, e.g. San Francisco, CA' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
    required: ['location'],
  },
};
const postcode = { name: 'get_postcode', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };

/** Every token whose bytes the grammar accepts after `prefix`, found by matching bytes alone. */
function byteLevelAllowed(g: ReturnType<typeof schemaGrammar>, prefix: Uint8Array): Set<number> {
  const out = new Set<number>();
  const buf = new Uint8Array(prefix.length + 256);
  buf.set(prefix);
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    if (tokenizer.addedTokens.some((t) => t.id === id)) continue;
    const b = tokenizer.tokenBytes(id);
    buf.set(b, prefix.length);
    if (g.match(buf.subarray(0, prefix.length + b.length)) !== 'rejected') out.add(id);
  }
  return out;
}

describe('token masks', () => {
  it('equal byte-by-byte matching over the whole vocabulary, at several points of an output', () => {
    const g = schemaGrammar({ type: 'object', properties: { name: { type: 'string', maxLength: 8 }, n: { type: 'number' } }, required: ['name', 'n'] });
    // Prefixes that end inside a key, inside a string value (also mid-character), and in a number.
    const prefixes = [[...Buffer.from('{"na')], [...Buffer.from('{"name": "a')], [...Buffer.from('{"name":"中'), 0xe6], [...Buffer.from('{"name":"","n":-1')]];
    for (const p of prefixes) {
      const prefix = Uint8Array.from(p);
      const m = g.matcher();
      for (const byte of prefix) expect(m.accept(tokenizer.tokenToId(byteToken(byte))!)).toBe(true);
      const allowed = new Set(m.allowed());
      const expected = byteLevelAllowed(g, prefix);
      expect(allowed.size, Buffer.from(prefix).toString()).toBe(expected.size);
      for (const t of expected) expect(allowed.has(t)).toBe(true);
    }
  });

  it('end-of-sequence only once the value is complete; padding ids never', () => {
    const g = schemaGrammar({ type: 'array', items: { type: 'integer' } });
    const m = g.matcher({ eosTokenIds: [imEnd] });
    expect([...m.allowed()]).not.toContain(imEnd);
    for (const t of tokenizer.encode('[1,2]')) expect(m.accept(t)).toBe(true);
    expect([...m.allowed()]).toEqual([imEnd]);
    expect(m.complete).toBe(true);
    expect(Math.max(...g.matcher().allowed())).toBeLessThan(tokenizer.vocabSize);
  });

  it('a token the mask did not allow kills the sequence instead of derailing it', () => {
    const m = schemaGrammar({ type: 'boolean' }).matcher();
    expect(m.accept(tokenizer.encode('"')[0])).toBe(false);
    expect(m.allowed().length).toBe(0);
  });
});

describe('malformed grammars are refused with an error, never a crash', () => {
  it('bad header, truncated data, dead ends, unknown special tokens', () => {
    const addon = structuredAddon();
    const vocab = nativeVocabulary(tokenizer);
    const MAGIC = 0x47524d31;
    const a = 'a'.charCodeAt(0);
    expect(() => addon.compileGrammar(vocab, Int32Array.from([1, 1, 0, 0, 0, 0, 1]))).toThrow(/magic/);
    expect(() => addon.compileGrammar(vocab, Int32Array.from([MAGIC, 2, 0, 0, 1, 0, 0, a]))).toThrow(/ends before/);
    // Node 1 is reached by "a" but can never finish.
    expect(() => addon.compileGrammar(vocab, Int32Array.from([MAGIC, 2, 0, 0, 1, 0, 0, a, a, 1, 1, 0]))).toThrow(/dead end/);
    // A special symbol must be an added token of the vocabulary.
    expect(() => addon.compileGrammar(vocab, Int32Array.from([MAGIC, 2, 0, 1, 1, 0, 500, 0, 256, 256, 1, 0, 1]))).toThrow(/not an added token/);
    const ok = addon.compileGrammar(vocab, Int32Array.from([MAGIC, 2, 0, 0, 1, 0, 0, a, a, 1, 0, 1]));
    expect(ok.match(Uint8Array.from([a]))).toBe('complete');
  });
});

describe('budgets', () => {
  it('every output finishes within max_tokens when the schema fits in it', () => {
    const schema = { type: 'object', properties: { title: { type: 'string', minLength: 5 }, tags: { type: 'array', items: { type: 'string' }, minItems: 2 } }, required: ['title', 'tags'] };
    const g = schemaGrammar(schema);
    const shortest = g.shortestOutput; // bytes; each byte is a token of its own at worst
    for (const maxTokens of [shortest + 1, shortest + 5, 60]) {
      for (let seed = 0; seed < 6; seed++) {
        const s = sample(g, seed, maxTokens);
        expect(s.finished, `${maxTokens}: ${s.text}`).toBe(true);
        expect(s.tokens.length).toBeLessThan(maxTokens);
        expect(ajv.validate(schema, JSON.parse(s.text))).toBe(true);
      }
    }
  });

  it('the think block is free text, closes once its budget is spent, and the JSON follows', () => {
    const g = schemaGrammar({ type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] }, true);
    const m = g.matcher({ eosTokenIds: [imEnd], thinkMaxTokens: 6 });
    expect([...m.allowed()]).toEqual([think]);
    expect(m.accept(think)).toBe(true);
    const text = tokenizer.encode('\nHello, "world" {');
    for (const t of text.slice(0, 5)) {
      expect(m.allowed().length).toBeGreaterThan(150_000); // any ordinary token, and </think>
      expect(m.accept(t)).toBe(true);
    }
    expect([...m.allowed()]).toEqual([thinkEnd]);
    expect(m.accept(thinkEnd)).toBe(true);
    for (const t of tokenizer.encode('\n\n{"ok": true}')) expect(m.accept(t)).toBe(true);
    expect(m.complete).toBe(true);
  });

  it('after a prompt that opened the block, the grammar starts in its body: no <think>, </think> closes it on budget', () => {
    const g = schemaGrammar({ type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] }, 'open');
    const m = g.matcher({ eosTokenIds: [imEnd], thinkMaxTokens: 4 });
    const first = new Set(m.allowed());
    expect(first.has(think)).toBe(false);
    expect(first.has(thinkEnd)).toBe(true);
    expect(first.size).toBeGreaterThan(150_000);
    for (const t of tokenizer.encode('Hello, "world" {').slice(0, 4)) expect(m.accept(t)).toBe(true);
    expect([...m.allowed()]).toEqual([thinkEnd]);
    expect(m.accept(thinkEnd)).toBe(true);
    for (const t of tokenizer.encode('\n\n{"ok": true}')) expect(m.accept(t)).toBe(true);
    expect(m.complete).toBe(true);
  });
});

describe('tool calls', () => {
  const parse = (text: string) => {
    const p = new ToolCallParser();
    const events = [...p.push(text), ...p.finish()];
    return { calls: events.flatMap((e) => (e.kind === 'call' ? [e.call] : [])), text: events.flatMap((e) => (e.kind === 'content' ? [e.text] : [])).join('') };
  };

  it('required: one or more calls of the listed tools with valid arguments, in Qwen3 format', () => {
    const { grammar } = outputs.compile({ kind: 'tool_calls', tools: [weather, postcode] }, false);
    const checks = new Map([weather, postcode].map((t) => [t.name, ajv.compile(t.parameters)]));
    let names = new Set<string>();
    for (let seed = 0; seed < 16; seed++) {
      const s = sample(grammar, seed, 200);
      expect(s.finished, s.text).toBe(true);
      expect(s.text).toMatch(/^<tool_call>\n\{"name": "(get_current_weather|get_postcode)", "arguments": /);
      const { calls, text } = parse(s.text);
      expect(text.trim()).toBe('');
      expect(calls.length).toBeGreaterThan(0);
      for (const c of calls) {
        expect(checks.get(c.name)!(JSON.parse(c.arguments)), c.arguments).toBe(true);
        names.add(c.name);
      }
    }
    expect(names).toEqual(new Set(['get_current_weather', 'get_postcode']));
    names = new Set();
    const named = outputs.compile({ kind: 'tool_calls', tools: [postcode] }, false).grammar;
    for (let seed = 0; seed < 6; seed++) for (const c of parse(sample(named, seed, 120).text).calls) names.add(c.name);
    expect(names).toEqual(new Set(['get_postcode']));
  });

  it('parallel false: after one complete call only end-of-sequence may follow', () => {
    const call = `<tool_call>\n{"name": "get_postcode", "arguments": {"city": "Paris"}}\n</tool_call>`;
    const after = (parallel: boolean) => {
      const m = outputs.compile({ kind: 'tool_calls', tools: [postcode], parallel }, false).grammar.matcher({ eosTokenIds: [imEnd] });
      for (const t of tokenizer.encode(call)) expect(m.accept(t)).toBe(true);
      return [...m.allowed()];
    };
    expect(after(false)).toEqual([imEnd]);
    // Parallel (the default): a newline and another call may follow.
    expect(after(true)).toContain(imEnd);
    expect(after(true).length).toBeGreaterThan(1);
    const one = outputs.compile({ kind: 'tool_calls', tools: [weather, postcode], parallel: false }, false).grammar;
    for (let seed = 0; seed < 8; seed++) {
      const s = sample(one, seed, 200);
      expect(s.finished, s.text).toBe(true);
      expect(parse(s.text).calls.length).toBe(1);
    }
  });

  it('tool_choice none: free text in which <tool_call> cannot be opened', () => {
    const m = outputs.withoutToolCalls().matcher({ eosTokenIds: [imEnd] });
    const allowed = new Set(m.allowed());
    expect(allowed.has(toolOpen)).toBe(false);
    expect(allowed.has(imEnd)).toBe(true);
    expect(allowed.has(thinkEnd)).toBe(true);
    expect(allowed.size).toBeGreaterThan(151_000);
  });
});

describe('the compiled-grammar cache', () => {
  it('compiles a schema once and refuses a refused one again at once', () => {
    const schema = { type: 'object', properties: { cached: { type: 'integer', minimum: 7 } } };
    const a = outputs.compile({ kind: 'json_schema', schema }, false);
    const b = outputs.compile({ kind: 'json_schema', schema: structuredClone(schema) }, false);
    expect(b.grammar).toBe(a.grammar);
    expect(b.compileMs).toBe(0);
    const refused = { type: 'string', pattern: '(x)\\1' };
    expect(() => outputs.compile({ kind: 'json_schema', schema: refused }, false)).toThrow(SchemaError);
    expect(outputs.cachedGrammars).toBeGreaterThan(0);
    expect(() => outputs.compile({ kind: 'json_schema', schema: refused }, false)).toThrow(/backreferences/);
  });

  it('masks of repeated states are served from the cache', () => {
    const g = schemaGrammar({ type: 'array', items: { type: 'string', enum: ['alpha', 'beta'] } });
    const first = sample(g, 11, 100);
    const before = g.stats();
    const again = sample(g, 11, 100);
    const after = g.stats();
    expect(again.tokens).toEqual(first.tokens);
    expect(after.masksComputed).toBe(before.masksComputed);
    expect(after.maskHits - before.maskHits).toBe(again.tokens.length + 1);
  });
});

describe('the sampler applies a mask word by word', () => {
  it('the same logits as testing every bit: all-zero, all-one and mixed words, tails, nothing past the vocabulary', () => {
    const next = rng(5);
    const word = (): number => {
      const kind = Math.floor(next() * 5);
      if (kind === 0) return 0;
      if (kind === 1) return 0xffffffff;
      if (kind === 2) return (1 << Math.floor(next() * 32)) >>> 0; // one token
      if (kind === 3) return ~(1 << Math.floor(next() * 32)) >>> 0; // all but one
      return Math.floor(next() * 2 ** 32) >>> 0;
    };
    // The model's vocabulary (a multiple of 32), the tokenizer's (a tail of 21 tokens), and a small one.
    for (const vocab of [151_936, tokenizer.vocabSize, 37]) {
      for (let round = 0; round < 4; round++) {
        const words = Uint32Array.from({ length: Math.ceil(vocab / 32) }, word);
        const buffer = Float32Array.from({ length: vocab + 8 }, () => next() * 20 - 10);
        const expected = buffer.slice();
        for (let t = 0; t < vocab; t++) if (!((words[t >>> 5] >>> (t & 31)) & 1)) expected[t] = -Infinity;
        structuredAddon().maskLogits(words, buffer.subarray(0, vocab));
        // The 8 values past the vocabulary are a guard: a bit set or clear there changes nothing.
        const first = buffer.findIndex((v, t) => !Object.is(v, expected[t]));
        expect(first, `vocab ${vocab}, token ${first}: ${buffer[first]} instead of ${expected[first]}`).toBe(-1);
      }
    }
  });
});

const singleByteTokens = new Map<number, string>();
for (let id = 0; id < 151643; id++) {
  const b = tokenizer.tokenBytes(id);
  if (b.length === 1) singleByteTokens.set(b[0], tokenizer.idToToken(id)!);
}

/** The byte-level BPE token that spells one byte. */
function byteToken(byte: number): string {
  return singleByteTokens.get(byte)!;
}
