// Progress of a long command on stderr: an ora spinner on a terminal, plain lines otherwise (CI
// logs, pipes), so output stays readable wherever it goes.
import ora from 'ora';
import type { Progress } from '../daemon/start.js';

export interface CliProgress extends Progress {
  succeed(text: string): void;
  fail(text: string): void;
  interrupted(text: string): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): CliProgress {
  // A terminal that reports no width (some pseudo-terminals) would make the spinner redraw
  // without end: plain lines there too.
  if (!stream.isTTY || !(stream.columns > 0)) {
    return {
      step: (text) => stream.write(`${text} ...\n`),
      warn: (text) => stream.write(`warning: ${text}\n`),
      succeed: (text) => stream.write(`${text}\n`),
      fail: () => undefined,
      interrupted: (text) => stream.write(`${text}\n`),
    };
  }
  const spinner = ora({ stream });
  return {
    step: (text) => {
      if (spinner.isSpinning) spinner.succeed();
      spinner.start(text);
    },
    warn: (text) => {
      const current = spinner.isSpinning ? spinner.text : undefined;
      spinner.stop();
      stream.write(`warning: ${text}\n`);
      if (current) spinner.start(current);
    },
    succeed: (text) => spinner.succeed(text),
    fail: () => {
      if (spinner.isSpinning) spinner.fail();
    },
    interrupted: (text) => {
      if (spinner.isSpinning) spinner.fail();
      stream.write(`${text}\n`);
    },
  };
}
