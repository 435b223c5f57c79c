// `grpst stop NAME [--timeout S]`: drain, then exit; SIGKILL after the timeout.
import type { Command } from 'commander';
import { envVars, grpstHome } from '../config/paths.js';
import { positiveSeconds } from './options.js';

export function register(program: Command): void {
  program
    .command('stop')
    .description('stop a server: no new requests, in-flight ones finish, then it exits (killed after --timeout)')
    .argument('<name>', 'server name (see grpst ps)')
    .option('--timeout <seconds>', `how long the drain may take before the server is killed (default: the server's own drain limit, ${envVars.drainTimeout} where it was started or 600 s, plus 30 s)`, positiveSeconds('--timeout'))
    .action(async (name: string, opts: { timeout?: number }) => {
      const [{ stopServer, stoppedAt }, { createProgress }] = await Promise.all([import('../daemon/stop.js'), import('./progress.js')]);
      const progress = createProgress();
      // Already stopped (its deploy folder and log remain): the goal is reached, so exit 0, as
      // `docker stop` and `systemctl stop` do; cleanup steps of a pipeline can run it unconditionally.
      // A name never started here stays an error (a typo should not pass silently).
      const at = stoppedAt(name, grpstHome());
      if (at) {
        progress.succeed(`${name} is not running (it stopped at ${at}; \`grpst logs ${name}\` shows why); nothing to stop`);
        return;
      }
      // The server cancels what is still running at its drain limit and exits; the kill is for a
      // server that does not (hung), so by default stop waits for that limit itself.
      // Ctrl-C while it drains ends only the waiting: the server, in its own process group, goes
      // on draining and exits by itself, and a second stop waits for it (a repeated SIGTERM does
      // not cut its drain short). Said, instead of a bare exit 130 that looks like nothing happened.
      const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
      let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
      const draining = (s: { pid: number }) => {
        // Installed before the line is printed: a Ctrl-C that follows the line finds it in place.
        onSignal = (signal) => {
          progress.interrupted(`${signal}: stopped waiting; ${name} goes on draining (pid ${s.pid}) and exits when its requests are done: \`grpst ps\` shows it, \`grpst stop ${name}\` waits for it again`);
          process.exit(signal === 'SIGINT' ? 130 : 143);
        };
        for (const sig of signals) process.on(sig, onSignal);
        progress.step(`stopping ${name} (pid ${s.pid}): draining in-flight requests`);
      };
      const result = await stopServer(name, grpstHome(), opts.timeout, draining).finally(() => {
        if (onSignal) for (const sig of signals) process.off(sig, onSignal);
      });
      if (!result.wasRunning && result.state.unreadable) progress.succeed(`${name} was not running; its unreadable state file (${result.state.unreadable}) was removed`);
      else if (!result.wasRunning) progress.succeed(`${name} was not running (pid ${result.state.pid} had died); its state was removed`);
      else if (result.killed) progress.succeed(`${name} did not finish within ${result.timeoutS} s and was killed`);
      else progress.succeed(`${name} stopped`);
    });
}
