import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChatTemplate, type ChatMessage, type ChatTool } from '../../src/chat/chat-template.js';
import { GrpstError } from '../../src/util/errors.js';
import { fixturesDir, readJson, readJsonInWrittenOrder, tokenizerDir } from '../helpers/fixtures.js';

interface TemplateCase {
  name: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  enable_thinking?: boolean;
  tools?: ChatTool[];
}

const cases = readJson<{ cases: TemplateCase[] }>(join(fixturesDir, 'template-cases.json')).cases;
const goldens = new Map(readJson<{ cases: { name: string; text: string }[] }>(join(fixturesDir, 'template-goldens.json')).cases.map((c) => [c.name, c.text]));
// In the written key order, as transformers rendered them (one case has integer-like keys).
const extra = readJsonInWrittenOrder<{ cases: (TemplateCase & { text: string })[] }>(join(fixturesDir, 'template-extra-goldens.json')).cases;

const template = ChatTemplate.fromDir(tokenizerDir);
const render = (c: TemplateCase) =>
  template.render(c.messages, { addGenerationPrompt: c.add_generation_prompt, enableThinking: c.enable_thinking, tools: c.tools });

describe('ChatTemplate renders byte-exact with transformers apply_chat_template', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (name, c) => {
    expect(goldens.has(name)).toBe(true);
    expect(render(c)).toBe(goldens.get(name));
  });

  it.each(extra.map((c) => [c.name, c] as const))('extra: %s', (_name, c) => {
    expect(render(c)).toBe(c.text);
  });

  it('does not change the messages it is given', () => {
    const c = extra.find((x) => x.name === 'multi-step-tools-keep-reasoning')!;
    const before = JSON.stringify(c);
    render(c);
    expect(JSON.stringify(c)).toBe(before);
  });
});

describe('ChatTemplate.fromDir', () => {
  it('prefers chat_template.jinja over tokenizer_config.json, as transformers does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grpst-tpl-'));
    copyFileSync(join(tokenizerDir, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}|{{ m.content }}]{% endfor %}{{ eos_token }}');
    expect(ChatTemplate.fromDir(dir).render([{ role: 'user', content: 'hi' }])).toBe('[user|hi]<|im_end|>');
  });

  it('names a folder without a chat template and the fix', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grpst-tpl-'));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>' }));
    try {
      ChatTemplate.fromDir(dir);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(GrpstError);
      expect((e as GrpstError).message).toMatch(/has no chat_template/);
      expect((e as GrpstError).hint).toMatch(/instruct checkpoint/);
    }
  });

  it('strips strings as Python does: only the given characters, else Python whitespace', () => {
    // Recorded with Jinja2 3.1.6 (Python str methods).
    const t = new ChatTemplate("{{ x.strip('\\n') }}|{{ x.lstrip() }}|{{ x.rstrip(' \\n\\\\') }}|{{ y.strip() }}|{{ y.strip('ab') }}");
    const out = t.render([], { kwargs: { x: '\n \\ \n', y: '\x1f\ufeffab\u3000a\x85' } });
    expect(out).toBe(' \\ |\\ \n||\ufeffab\u3000a|\x1f\ufeffab\u3000a\x85');
  });

  it('writes floats below 1e-4 as Python does, in tojson and printed', () => {
    // Recorded with transformers 5.24.0's template compiler (Jinja2, json.dumps).
    const t = new ChatTemplate("{{ x }}|{{ [x, 0.5, y, 1, 'a', none, {'k': x}] | tojson }}|{{ x * 2 }}");
    const out = t.render([], { kwargs: { x: 1.5e-7, y: -0.00002 } });
    expect(out).toBe('1.5e-07|[1.5e-07, 0.5, -2e-05, 1, "a", null, {"k": 1.5e-07}]|3e-07');
    const tool: ChatTool = { type: 'function', function: { name: 'fit', parameters: { type: 'object', properties: { tol: { type: 'number', minimum: 0.00001, default: 0.0001 } } } } };
    expect(template.render([{ role: 'user', content: 'x' }], { tools: [tool] })).toContain('"minimum": 1e-05, "default": 0.0001}');
  });

  it('reports a template that fails on the messages as bad input', () => {
    const t = new ChatTemplate("{{ raise_exception('Conversation roles must alternate') }}");
    expect(() => t.render([{ role: 'user', content: 'x' }])).toThrow(/Conversation roles must alternate/);
  });
});
