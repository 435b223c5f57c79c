// Messages typed into `grpst chat`. One line is one message, with two ways to send several
// lines as one: a paste (on a terminal, lines that arrive together, within a few milliseconds, are
// one message: nobody types that fast) and a block between lines of `"""` (as Ollama reads them).
// Once the input ends (Ctrl-D, or the end of piped input) there is no prompt again: prompting a
// closed readline switches the terminal back on with nothing reading it, and the chat would hang.
import type readline from 'node:readline';

/** Lines of one paste arrive in one read of the terminal; typed lines are far more apart. */
const pasteGapMs = 25;
const fence = '"""';

export class MessageReader {
  private lines: string[] = [];
  private ready: string[] = [];
  private block: string[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private waiting: ((message: string | null) => void) | undefined;
  private ended = false;

  constructor(
    private readonly rl: readline.Interface,
    private readonly coalesce: boolean,
  ) {
    rl.on('line', (line) => this.onLine(line));
    rl.on('close', () => {
      this.flushLines();
      if (this.block) this.finishBlock(); // an unclosed block is sent as it is
      this.ended = true;
      this.deliver();
    });
  }

  /** Whether the input has ended: no more prompts. */
  get closed(): boolean {
    return this.ended;
  }

  /** The next message, or null once the input has ended and every message was taken. */
  next(): Promise<string | null> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.deliver();
    });
  }

  prompt(): void {
    if (!this.ended) this.rl.prompt();
  }

  private onLine(line: string): void {
    if (!this.coalesce) {
      this.take(line);
      return;
    }
    this.lines.push(line);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flushLines(), pasteGapMs);
  }

  private flushLines(): void {
    clearTimeout(this.timer);
    if (this.lines.length === 0) return;
    const lines = this.lines;
    this.lines = [];
    // A pasted block of text is one message; a paste holding a fence goes line by line through it.
    if (this.block || lines.some((l) => l.trim() === fence || l.trimStart().startsWith(fence))) for (const l of lines) this.take(l);
    else this.push(lines.join('\n'));
  }

  private take(line: string): void {
    if (this.block) {
      if (line.trimEnd().endsWith(fence)) {
        const last = line.trimEnd().slice(0, -fence.length);
        if (last.trim() !== '') this.block.push(last);
        this.finishBlock();
      } else this.block.push(line);
      return;
    }
    const start = line.trimStart();
    if (start.startsWith(fence)) {
      const rest = start.slice(fence.length);
      const closing = rest.trimEnd();
      if (closing.endsWith(fence)) this.push(closing.slice(0, -fence.length)); // """one line"""
      else this.block = rest === '' ? [] : [rest];
      return;
    }
    this.push(line);
  }

  private finishBlock(): void {
    const text = this.block!.join('\n');
    this.block = undefined;
    this.push(text);
  }

  private push(message: string): void {
    this.ready.push(message);
    this.deliver();
  }

  private deliver(): void {
    if (!this.waiting) return;
    if (this.ready.length > 0) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve(this.ready.shift()!);
    } else if (this.ended) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve(null);
    }
  }
}
