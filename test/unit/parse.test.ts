import { describe, expect, it } from 'vitest';
import { OutputParser, type OutputOptions } from '../../src/parse/output.js';
import { ReasoningSplitter } from '../../src/parse/reasoning.js';
import { StopStringMatcher } from '../../src/parse/stop-strings.js';
import { parseToolCallBody, partialToolCall, ToolCallParser } from '../../src/parse/tool-calls.js';
import { recorded, splits } from './parse-recorded.js';

function run(opts: OutputOptions, pieces: string[]) {
  const p = new OutputParser(opts);
  let content = '';
  let reasoning = '';
  const calls: { name: string; arguments: unknown }[] = [];
  let stopped = false;
  const take = (d: ReturnType<OutputParser['push']>) => {
    content += d.content;
    reasoning += d.reasoning;
    for (const c of d.toolCalls) calls.push({ name: c.name, arguments: JSON.parse(c.arguments) });
    stopped ||= d.stopped;
  };
  for (const piece of pieces) {
    take(p.push(piece));
    if (stopped) break;
  }
  take(p.finish());
  return { content, reasoning, calls, stopped };
}

const separated: OutputOptions = { stops: [], thinking: true, separateReasoning: true, toolCalls: true };
const inline: OutputOptions = { stops: [], thinking: true, separateReasoning: false, toolCalls: true };
const thinkingOff: OutputOptions = { stops: [], thinking: false, separateReasoning: true, toolCalls: true };

describe('output parser on recorded outputs, split at every boundary', () => {
  for (const rec of recorded) {
    it(rec.name, () => {
      const inlineContent = rec.text.includes('<think>') ? undefined : null;
      for (const pieces of splits(rec.text)) {
        expect(run(separated, pieces), `separated ${JSON.stringify(pieces)}`).toEqual({ ...rec.separated, stopped: false });
        const inl = run(inline, pieces);
        // Inline: the think block stays in content exactly as written; calls after it still parse.
        expect(inl.reasoning).toBe('');
        expect(inl.calls).toEqual(rec.separated.calls);
        if (inlineContent === undefined) expect(inl.content.startsWith('<think>')).toBe(true);
        const off = run(thinkingOff, pieces);
        expect(off.reasoning, 'thinking off never fills reasoning').toBe('');
      }
    });
  }

  it('inline mode keeps the exact text when there are no calls', () => {
    const text = recorded[0].text;
    for (const pieces of splits(text)) expect(run(inline, pieces).content).toBe(text);
  });

  it('thinking off: a think block the model writes anyway stays in content', () => {
    const text = '<think>\nx\n</think>\n\nanswer';
    expect(run({ ...thinkingOff, toolCalls: false }, [text])).toEqual({ content: text, reasoning: '', calls: [], stopped: false });
  });

  it('prompt that pre-opens the think block', () => {
    const out = run({ ...separated, startInReasoning: true }, ['reasons here\n</thi', 'nk>\n\nanswer']);
    expect(out).toEqual({ reasoning: 'reasons here\n', content: 'answer', calls: [], stopped: false });
  });

  it("prompt that pre-opens the think block, inline: the content starts with the prompt's tag, cut or whole", () => {
    const opened = { ...inline, startInReasoning: true, promptOpening: '<think>\n' };
    const text = 'reasons here\n</think>\n\nanswer';
    for (const pieces of splits(text)) expect(run(opened, pieces).content).toBe(`<think>\n${text}`);
    expect(run(opened, ['reasons he']).content).toBe('<think>\nreasons he');
    expect(run(opened, []).content).toBe('<think>\n');
    // Separated, the tag goes where the other tags go: nowhere.
    expect(run({ ...separated, startInReasoning: true, promptOpening: '<think>\n' }, [text])).toEqual({ reasoning: 'reasons here\n', content: 'answer', calls: [], stopped: false });
  });

  it('no tool parsing: call blocks stay text', () => {
    const text = recorded[2].text;
    expect(run({ ...separated, toolCalls: false }, [text]).content).toBe(text);
  });
});

describe('stop strings', () => {
  const text = 'Hello world. The END is near, STOP here.';
  it('cut before the stop string at every split, and nothing of it leaks', () => {
    for (const pieces of splits(text)) {
      const m = new StopStringMatcher(['END', 'never']);
      let out = '';
      let stop: string | undefined;
      for (const piece of pieces) {
        const r = m.push(piece);
        out += r.text;
        // What was released so far can never contain a started stop string at its end.
        expect(out.endsWith('E') || out.endsWith('EN') || out.endsWith('n')).toBe(false);
        if (r.stop) {
          stop = r.stop;
          break;
        }
      }
      out += m.finish();
      expect(out).toBe('Hello world. The ');
      expect(stop).toBe('END');
    }
  });

  it('the earliest of several stop strings wins', () => {
    const m = new StopStringMatcher(['STOP', 'is near']);
    expect(m.push(text)).toEqual({ text: 'Hello world. The END ', stop: 'is near' });
  });

  it('a held prefix that never completes is released at the end', () => {
    const m = new StopStringMatcher(['ENDING']);
    expect(m.push('the END')).toEqual({ text: 'the ' });
    expect(m.finish()).toBe('END');
  });

  it('stop strings apply to the think block too, and inside the pipeline', () => {
    const out = run({ ...separated, stops: ['</think>'] }, ['<think>\nabc\n</th', 'ink>\n\nrest']);
    expect(out).toEqual({ reasoning: '\nabc\n', content: '', calls: [], stopped: true });
  });

  it('no stop strings: text passes straight through', () => {
    const m = new StopStringMatcher(['']);
    expect(m.active).toBe(false);
    expect(m.push('abc<')).toEqual({ text: 'abc<' });
  });
});

describe('reasoning splitter', () => {
  it('holds whitespace and a partial tag at the start', () => {
    const s = new ReasoningSplitter();
    expect(s.push('\n <thi')).toEqual([]);
    expect(s.push('nk>x')).toEqual([
      { kind: 'open', text: '\n <think>' },
      { kind: 'reasoning', text: 'x' },
    ]);
  });

  it('output that is only whitespace is content', () => {
    const s = new ReasoningSplitter();
    expect(s.push('\n\n')).toEqual([]);
    expect(s.finish()).toEqual([{ kind: 'content', text: '\n\n' }]);
  });

  it('a partial open tag followed by other text is content', () => {
    const s = new ReasoningSplitter();
    expect(s.push('<thi')).toEqual([]);
    expect(s.push('s is')).toEqual([{ kind: 'content', text: '<this is' }]);
  });
});

describe('tool-call parser', () => {
  it('an unterminated block that is a complete call still counts', () => {
    const p = new ToolCallParser();
    p.push('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n');
    expect(p.finish()).toEqual([{ kind: 'call', call: { name: 'f', arguments: '{"a":1}' } }]);
  });

  it('an unterminated block cut mid-JSON is returned as text', () => {
    const p = new ToolCallParser();
    const ev = [...p.push('<tool_call>\n{"name": "f", "argu'), ...p.finish()];
    expect(ev).toEqual([{ kind: 'content', text: '<tool_call>\n{"name": "f", "argu' }]);
  });

  it('a forced call cut mid-JSON is still that call, with its arguments as far as they came', () => {
    const named = new ToolCallParser({ only: 'get_postcode' });
    expect([...named.push('<tool_call>\n{"'), ...named.finish()]).toEqual([{ kind: 'call', call: { name: 'get_postcode', arguments: '' } }]);
    const written = new ToolCallParser({});
    expect([...written.push('<tool_call>\n{"name": "f\\u00e9", "arguments": {"city": "Pa'), ...written.finish()]).toEqual([{ kind: 'call', call: { name: 'fé', arguments: '{"city": "Pa' } }]);
    // required, cut before a name: nothing to report, and no markup as content either
    const early = new ToolCallParser({});
    expect([...early.push('<tool_call>\n{"na'), ...early.finish()]).toEqual([]);
    expect(partialToolCall('{"name": "g", "parameters": {"x": 1', undefined)).toEqual({ name: 'g', arguments: '{"x": 1' });
  });

  it('text after a call is content; trailing whitespace without calls is kept', () => {
    const p = new ToolCallParser();
    const ev = [...p.push('<tool_call>{"name":"f"}</tool_call> then text'), ...p.finish()];
    expect(ev).toEqual([
      { kind: 'call', call: { name: 'f', arguments: '{}' } },
      { kind: 'content', text: ' then text' },
    ]);
    const q = new ToolCallParser();
    expect([...q.push('answer\n\n'), ...q.finish()].map((e) => (e.kind === 'content' ? e.text : '')).join('')).toBe('answer\n\n');
  });

  it('bodies that are not calls', () => {
    for (const body of ['[]', '"f"', '{"arguments": {}}', '{"name": ""}', '{"name": "f", "arguments": [1]}', '{"name": "f", "arguments": "nope"}', 'null'])
      expect(parseToolCallBody(body), body).toBeNull();
    expect(parseToolCallBody(' {"name": "f", "parameters": {"x": "y"}} ')).toEqual({ name: 'f', arguments: '{"x":"y"}' });
  });
});
