// `grpst stop NAME [--timeout S]`: drain, then exit; SIGKILL after the timeout.
import type { Command } from 'commander';
import { grpstHome } from '../config/paths.js';
import { positiveSeconds } from './options.js';

export function register(program: Command): void {
  program
    .command('stop')
    .description('stop a server: no new requests, in-flight ones finish, then it exits (killed after --timeout)')
    .argument('<name>', 'server name (see grpst ps)')
    .option('--timeout <seconds>', 'how long the drain may take before the server is killed', positiveSeconds('--timeout'), 60)
    .action(async (name: string, opts: { timeout: number }) => {
      const [{ stopServer }, { createProgress }] = await Promise.all([import('../daemon/stop.js'), import('./progress.js')]);
      const progress = createProgress();
      const result = await stopServer(name, grpstHome(), opts.timeout, (s) => progress.step(`stopping ${name} (pid ${s.pid}): draining in-flight requests`));
      if (!result.wasRunning) progress.succeed(`${name} was not running (pid ${result.state.pid} had died); its state was removed`);
      else if (result.killed) progress.succeed(`${name} did not finish within ${opts.timeout} s and was killed`);
      else progress.succeed(`${name} stopped`);
    });
}
