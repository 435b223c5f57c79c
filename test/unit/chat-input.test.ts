// What `grpst chat` reads as one message: a line; a """ block of several; on a terminal, the
// lines of one paste; and nothing more once the input has ended (no prompt on a closed reader).
import { EventEmitter } from 'node:events';
import type readline from 'node:readline';
import { describe, expect, it } from 'vitest';
import { MessageReader } from '../../src/cli/chat-input.js';

function fakeInput() {
  const rl = Object.assign(new EventEmitter(), { prompts: 0, prompt() { this.prompts++; } });
  return rl as unknown as readline.Interface & EventEmitter & { prompts: number };
}

async function messages(reader: MessageReader): Promise<string[]> {
  const out: string[] = [];
  for (let m = await reader.next(); m !== null; m = await reader.next()) out.push(m);
  return out;
}

describe('MessageReader', () => {
  it('one line per message; """ blocks are one message; an unclosed block is sent at the end', async () => {
    const rl = fakeInput();
    const reader = new MessageReader(rl, false);
    for (const l of ['hello', '"""', 'def f():', '    return 1', '"""', '"""inline"""', '"""open', 'tail']) rl.emit('line', l);
    rl.emit('close');
    expect(await messages(reader)).toEqual(['hello', 'def f():\n    return 1', 'inline', 'open\ntail']);
  });

  it('on a terminal, lines arriving together are one message; lines typed apart are two', async () => {
    const rl = fakeInput();
    const reader = new MessageReader(rl, true);
    rl.emit('line', 'pasted one');
    rl.emit('line', '  pasted two');
    await new Promise((r) => setTimeout(r, 80));
    rl.emit('line', 'typed later');
    await new Promise((r) => setTimeout(r, 80));
    rl.emit('close');
    expect(await messages(reader)).toEqual(['pasted one\n  pasted two', 'typed later']);
  });

  it('no prompt once the input has ended', () => {
    const rl = fakeInput();
    const reader = new MessageReader(rl, true);
    reader.prompt();
    rl.emit('close');
    reader.prompt();
    expect(rl.prompts).toBe(1);
    expect(reader.closed).toBe(true);
  });
});
