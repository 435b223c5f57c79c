// What a build tells the person (or the CI log) while it runs: a spinner with phase, percent and
// elapsed time on a terminal, plain timestamped lines otherwise. With --json the lines go to
// stderr so stdout carries only the summary.
import ora, { type Ora } from 'ora';

export interface Reporter {
  /** Starts a named phase (convert, calibrate, quantize, write, verify, ...). */
  phase(name: string, detail?: string): void;
  /** Progress inside the current phase, 0..1 (undefined: unknown), with an optional short note. */
  progress(fraction: number | undefined, detail?: string): void;
  /** A line worth keeping in the log (printed above the spinner on a terminal). */
  info(line: string): void;
  /** Ends the current phase successfully. */
  done(detail?: string): void;
  /** Stops the spinner after a failure (the caller prints the error). */
  fail(): void;
}

export interface ReporterOptions {
  stream: NodeJS.WriteStream;
  /** Force plain lines even on a terminal. */
  plain?: boolean;
  now?: () => number;
}

export function createReporter(opts: ReporterOptions): Reporter {
  // A terminal that reports no width (some ptys) would make the spinner's redraw arithmetic
  // divide by zero: plain lines there too.
  const interactive = !opts.plain && opts.stream.isTTY === true && (opts.stream.columns ?? 0) > 0 && process.env.CI === undefined;
  return interactive ? new SpinnerReporter(opts.stream, opts.now) : new LineReporter(opts.stream, opts.now);
}

function seconds(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
}

function percent(f: number): string {
  return `${Math.round(Math.min(1, Math.max(0, f)) * 100)}%`;
}

abstract class BaseReporter implements Reporter {
  protected current = '';
  protected phaseStart = 0;
  protected readonly start: number;
  constructor(protected readonly stream: NodeJS.WriteStream, protected readonly now: () => number = Date.now) {
    this.start = now();
  }
  protected elapsed(): string {
    return seconds(this.now() - this.start);
  }
  abstract phase(name: string, detail?: string): void;
  abstract progress(fraction: number | undefined, detail?: string): void;
  abstract info(line: string): void;
  abstract done(detail?: string): void;
  abstract fail(): void;
}

/** CI logs: one line when a phase starts, at every tenth of it, and when it ends. */
class LineReporter extends BaseReporter {
  private lastTenth = -1;
  private lastNote = 0;
  private write(text: string): void {
    this.stream.write(`[${this.elapsed().padStart(7)}] ${text}\n`);
  }
  phase(name: string, detail?: string): void {
    this.current = name;
    this.phaseStart = this.now();
    this.lastTenth = -1;
    this.lastNote = this.now();
    this.write(`${name}${detail ? `: ${detail}` : ''}`);
  }
  progress(fraction: number | undefined, detail?: string): void {
    if (fraction === undefined || Number.isNaN(fraction)) {
      // Notes without a fraction (a tool's own log lines): one every 30 s keeps a CI log alive.
      if (detail && this.now() - this.lastNote >= 30_000) {
        this.lastNote = this.now();
        this.write(`${this.current}: ${detail}`);
      }
      return;
    }
    const tenth = Math.floor(Math.min(1, Math.max(0, fraction)) * 10);
    if (tenth <= this.lastTenth || tenth === 0) return;
    this.lastTenth = tenth;
    this.write(`${this.current} ${percent(fraction)}${detail ? `  ${detail}` : ''}`);
  }
  info(line: string): void {
    this.write(line);
  }
  done(detail?: string): void {
    this.write(`${this.current} done in ${seconds(this.now() - this.phaseStart)}${detail ? `: ${detail}` : ''}`);
  }
  fail(): void {}
}

/** Terminals: one spinner line, rewritten in place. */
class SpinnerReporter extends BaseReporter {
  private spinner: Ora;
  private fraction: number | undefined;
  private detail = '';
  private timer: NodeJS.Timeout;
  constructor(stream: NodeJS.WriteStream, now?: () => number) {
    super(stream, now);
    this.spinner = ora({ stream, discardStdin: false });
    // Elapsed time moves even when a phase reports nothing for a while.
    this.timer = setInterval(() => this.render(), 500);
    this.timer.unref();
  }
  private render(): void {
    if (!this.spinner.isSpinning) return;
    const pct = this.fraction === undefined ? '' : ` ${percent(this.fraction)}`;
    const width = Math.max(20, (this.stream.columns ?? 100) - 40);
    const note = this.detail.length > width ? `${this.detail.slice(0, width - 1)}…` : this.detail;
    this.spinner.text = `${this.current}${pct}  ${seconds(this.now() - this.phaseStart)}${note ? `  ${note}` : ''}`;
  }
  phase(name: string, detail?: string): void {
    this.current = name;
    this.phaseStart = this.now();
    this.fraction = undefined;
    this.detail = detail ?? '';
    if (!this.spinner.isSpinning) this.spinner.start();
    this.render();
  }
  progress(fraction: number | undefined, detail?: string): void {
    if (fraction !== undefined && !Number.isNaN(fraction)) this.fraction = fraction;
    if (detail !== undefined) this.detail = detail;
    this.render();
  }
  info(line: string): void {
    const spinning = this.spinner.isSpinning;
    if (spinning) this.spinner.clear();
    this.stream.write(`${line}\n`);
    if (spinning) this.render();
  }
  done(detail?: string): void {
    this.spinner.succeed(`${this.current} (${seconds(this.now() - this.phaseStart)})${detail ? `  ${detail}` : ''}`);
  }
  fail(): void {
    clearInterval(this.timer);
    if (this.spinner.isSpinning) this.spinner.fail(`${this.current} failed after ${seconds(this.now() - this.phaseStart)}`);
  }
}

/** A reporter that keeps everything, for tests and library callers. */
export class MemoryReporter implements Reporter {
  readonly events: { kind: string; text: string; fraction?: number }[] = [];
  phase(name: string, detail?: string): void {
    this.events.push({ kind: 'phase', text: detail ? `${name}: ${detail}` : name });
  }
  progress(fraction: number | undefined, detail?: string): void {
    this.events.push({ kind: 'progress', text: detail ?? '', fraction });
  }
  info(line: string): void {
    this.events.push({ kind: 'info', text: line });
  }
  done(detail?: string): void {
    this.events.push({ kind: 'done', text: detail ?? '' });
  }
  fail(): void {
    this.events.push({ kind: 'fail', text: '' });
  }
}
