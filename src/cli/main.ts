// grpst's command line. Each command lives in its own module that exports register(program);
// adding a command is one import and one entry in `commands`.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { handleClosedOutput } from '../util/closed-output.js';
import { ExitCode, errorText, GrpstError } from '../util/errors.js';
import { register as registerArchive } from './archive.js';
import { register as registerBench } from './bench.js';
import { register as registerBuild } from './build.js';
import { register as registerChat } from './chat.js';
import { register as registerRun } from './run.js';
import { register as registerLogs } from './logs.js';
import { register as registerPs } from './ps.js';
import { register as registerPull } from './pull.js';
import { register as registerList } from './list.js';
import { register as registerRm } from './rm.js';
import { register as registerServe } from './serve.js';
import { register as registerStart } from './start.js';
import { register as registerStop } from './stop.js';

const commands: ((program: Command) => void)[] = [registerPull, registerList, registerRm, registerBuild, registerRun, registerArchive, registerStart, registerPs, registerStop, registerLogs, registerServe, registerChat, registerBench];

export function buildProgram(): Command {
  const program = new Command('grpst')
    .description('Build, pack and serve Qwen3 engines with an OpenAI-compatible API')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  handleClosedOutput(argv[2] === 'serve' ? 'ignore' : 'exit');
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    process.exitCode = exitCodeOf(err, argv);
    // A server that failed (its port taken, say) exits now, not once its engine's worker thread
    // has finished loading: `grpst start` is waiting on its exit.
    if (argv[2] === 'serve') process.exit();
  }
}

function exitCodeOf(err: unknown, argv: string[]): number {
  if (err instanceof CommanderError) {
    // Commander has printed its message (or the help) already. A build asked for --json still gets
    // its JSON answer on stdout (CI parses it), as every other failing build does.
    if (err.exitCode !== 0 && argv[2] === 'build' && argv.includes('--json'))
      process.stdout.write(`${JSON.stringify({ ok: false, error: err.message.replace(/^error: /, ''), exit_code: ExitCode.badInput }, null, 2)}\n`);
    return err.exitCode === 0 ? ExitCode.ok : ExitCode.badInput;
  }
  process.stderr.write(`error: ${errorText(err)}\n`);
  // GRPST_DEBUG=1: the whole stack of any error, ours included (and its cause's), for a bug report.
  // Any other value turns it on too, but 0, false, no and off, which say the opposite.
  const debug = !/^\s*(0|false|no|off)?\s*$/i.test(process.env.GRPST_DEBUG ?? '');
  if (debug && err instanceof Error) {
    process.stderr.write(`${err.stack ?? ''}\n`);
    if (err.cause instanceof Error) process.stderr.write(`caused by: ${err.cause.stack ?? err.cause.message}\n`);
  }
  if (err instanceof GrpstError) return err.exitCode;
  if (!(err instanceof Error)) return ExitCode.failed;
  if (!debug && err.stack) process.stderr.write(`${err.stack.split('\n').slice(1, 4).join('\n')}\n`);
  return ExitCode.failed;
}

function packageVersion(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  try {
    return (JSON.parse(fs.readFileSync(path.join(here, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

function isEntryPoint(): boolean {
  try {
    return process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

// Run when executed directly (the daemon is spawned on this file); bin/grpst.js calls main().
if (isEntryPoint()) await main();
