// `grpst logs NAME [-f] [-n N]`
import type { Command } from 'commander';
import { grpstHome } from '../config/paths.js';
import { wholeNumber } from './options.js';

export function register(program: Command): void {
  program
    .command('logs')
    .description("print a server's log")
    .argument('<name>', 'server name (see grpst ps)')
    .option('-f, --follow', 'keep printing new lines until the server stops', false)
    .option('-n, --lines <n>', 'print only the last N lines first (0: none; with -f, only new lines)', wholeNumber('--lines'))
    .action(async (name: string, opts: { follow: boolean; lines?: number }) => {
      const { showLogs } = await import('../daemon/logs.js');
      const abort = new AbortController();
      const onInt = () => abort.abort();
      process.once('SIGINT', onInt);
      try {
        const ended = await showLogs(name, grpstHome(), { follow: opts.follow, lines: opts.lines, signal: abort.signal });
        if (ended === 'stopped') process.stderr.write(`${name} stopped\n`);
        if (ended === 'died') {
          process.stderr.write(`${name} ended without draining (killed or crashed; the lines above are its last): \`grpst stop ${name}\` clears its entry\n`);
          process.exitCode = 1;
        }
      } finally {
        process.off('SIGINT', onInt);
      }
    });
}
