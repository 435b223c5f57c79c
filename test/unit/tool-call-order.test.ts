// A tool call's arguments keep the keys in the order the model wrote them. JSON.parse moves
// integer-like keys ("2", "10") to the front in ascending order; a client that reads the
// arguments string (and vLLM's Qwen3 parser, built on Python's json) sees the written order.
import { describe, expect, it } from 'vitest';
import { parseOrderedJson, stringifyOrderedJson } from '../../src/parse/ordered-json.js';
import { OutputParser } from '../../src/parse/output.js';
import { parseToolCallBody, ToolCallParser } from '../../src/parse/tool-calls.js';
import { ChatChunker } from '../../src/server/openai/chat-mapping.js';
import { splits } from './parse-recorded.js';

const reorder = (text: string) => stringifyOrderedJson(parseOrderedJson(text));

describe('tool-call arguments keep the written key order', () => {
  it('integer-like keys stay where they were written', () => {
    expect(parseToolCallBody('{"name": "f", "arguments": {"b": 1, "2": 0}}')).toEqual({ name: 'f', arguments: '{"b":1,"2":0}' });
    expect(parseToolCallBody('{"name": "f", "arguments": {"10": "x", "2": "y", "a": "z", "1": "w"}}')?.arguments).toBe('{"10":"x","2":"y","a":"z","1":"w"}');
    // The same through `parameters`, the other spelling models use.
    expect(parseToolCallBody('{"name": "f", "parameters": {"z": true, "0": null}}')?.arguments).toBe('{"z":true,"0":null}');
  });

  it('nested objects and objects inside arrays keep their order too', () => {
    const body = '{"name": "plan", "arguments": {"steps": [{"3": "c", "1": "a"}, {"k": {"20": 2, "b": {"9": 9, "x": 0}}}], "0": {"b": [], "1": {}}}}';
    expect(parseToolCallBody(body)?.arguments).toBe('{"steps":[{"3":"c","1":"a"},{"k":{"20":2,"b":{"9":9,"x":0}}}],"0":{"b":[],"1":{}}}');
  });

  it('unicode stays as written characters, escapes come out as JSON.stringify writes them', () => {
    const body = '{"name": "f", "arguments": {"城市": "北京", "2": "caf\\u00e9 😀", "line": "a\\nb\\t\\"q\\"", "ctl": "\\u0001"}}';
    expect(parseToolCallBody(body)?.arguments).toBe('{"城市":"北京","2":"café 😀","line":"a\\nb\\t\\"q\\"","ctl":"\\u0001"}');
  });

  it('only the key order differs from JSON.stringify: spacing, numbers and escapes are the same', () => {
    for (const text of [
      '{"a": 1, "b": [1.0, -0, 1e2, 2.5E-3, true, false, null], "c": {"d": "\\/\\u00e9"}}',
      ' \n{ "x" :\t[ ] , "y" : { } }\r\n',
      '{"__proto__": {"polluted": 1}, "constructor": "c"}',
      '"plain"',
      '[]',
    ]) {
      expect(reorder(text), text).toBe(JSON.stringify(JSON.parse(text)));
    }
  });

  it('a key written twice keeps its first place and its last value, as JSON.parse does', () => {
    expect(reorder('{"b": 1, "a": 2, "b": 3}')).toBe('{"b":3,"a":2}');
    expect(parseToolCallBody('{"name": "f", "arguments": {"x": 1}, "arguments": {"2": 0, "y": 1}}')?.arguments).toBe('{"2":0,"y":1}');
  });

  it('arguments written as a JSON string are passed on as written', () => {
    expect(parseToolCallBody('{"name": "f", "arguments": "{\\"b\\": 1, \\"2\\": 0}"}')?.arguments).toBe('{"b": 1, "2": 0}');
  });

  it('arguments holding a string of megabytes keep their order', () => {
    const long = 'wave '.repeat(2_000_000);
    expect(parseToolCallBody(`{"name": "f", "arguments": {"text": "${long}", "1": 0}}`)?.arguments).toBe(`{"text":"${long}","1":0}`);
  });

  it('nesting too deep for the stack is given back as text, not a failed request', () => {
    const deep = '['.repeat(20000) + ']'.repeat(20000);
    const p = new ToolCallParser();
    const body = `{"name": "f", "arguments": {"a": ${deep}}}`;
    expect([...p.push(`<tool_call>${body}</tool_call>`), ...p.finish()]).toEqual([{ kind: 'content', text: `<tool_call>${body}</tool_call>` }]);
  });

  it('streamed: the order survives any split of the output and reaches the stream chunk as is', () => {
    const text = 'Let me check.\n<tool_call>\n{"name": "lookup", "arguments": {"query": "北京", "2": {"10": 1, "1": 0}}}\n</tool_call>';
    const expected = '{"query":"北京","2":{"10":1,"1":0}}';
    for (const pieces of splits(text)) {
      const parser = new OutputParser({ stops: [], thinking: false, separateReasoning: true, toolCalls: true });
      const calls = [...pieces.flatMap((piece) => parser.push(piece).toolCalls), ...parser.finish().toolCalls];
      expect(calls.map((c) => c.arguments), JSON.stringify(pieces)).toEqual([expected]);
    }
    const chunker = new ChatChunker(
      { id: 'chatcmpl-x', created: 0, model: 'm', system_fingerprint: 'fp' },
      { reasoningField: false, tok: { tokenBytes: () => new Uint8Array() } },
      false,
    );
    const chunks = chunker.updateChunks({ index: 0, content: '', reasoning: '', toolCalls: [{ name: 'lookup', arguments: expected }], logprobs: [], completionTokens: 1 });
    const streamed = chunks.map((c) => (c.choices as { delta: { tool_calls?: { function: { arguments: string } }[] } }[])[0].delta.tool_calls?.[0].function.arguments).join('');
    expect(streamed).toBe(expected);
  });
});
