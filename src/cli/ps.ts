// `grpst ps [--json] [--prune]`: the seed's table, every entry probed (process and /health).
import type { Command } from 'commander';
import { grpstHome } from '../config/paths.js';
import type { ProbedServer } from '../daemon/probe.js';

const column = 20;

export function register(program: Command): void {
  program
    .command('ps')
    .description('list servers: PORT(HTTP,RPC)  NAME  PID  DEPLOY_PATH  STATUS')
    .option('--json', 'print JSON', false)
    .option('--prune', 'remove the entries of servers that died', false)
    .action(async (opts: { json: boolean; prune: boolean }) => {
      // The lifecycle modules load when the command runs, not when the CLI starts.
      const [{ probeServer }, { listStates, removeState }] = await Promise.all([import('../daemon/probe.js'), import('../daemon/state.js')]);
      const home = grpstHome();
      const probed = await Promise.all(listStates(home).map((s) => probeServer(s, home)));
      if (opts.prune) for (const p of probed) if (p.status === 'dead') removeState(p.state.name, home);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(probed.map(toJson), null, 2)}\n`);
        return;
      }
      process.stdout.write(formatTable([['PORT(HTTP,RPC)', 'NAME', 'PID', 'DEPLOY_PATH', 'STATUS'], ...probed.map(toRow)]));
      if (opts.prune) {
        const pruned = probed.filter((p) => p.status === 'dead').length;
        if (pruned > 0) process.stderr.write(`pruned ${pruned} dead ${pruned === 1 ? 'entry' : 'entries'}\n`);
      }
    });
}

/**
 * The seed's table: columns of at least 20 characters, each widened to its longest cell (a deep
 * deploy path) so every row's STATUS starts under the header's.
 */
export function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(column, ...rows.map((r) => (r[i] ?? '').length + 1)));
  return rows.map((r) => r.map((cell, i) => (i < r.length - 1 ? cell.padEnd(widths[i]) : cell)).join('')).join('\n') + '\n';
}

function ports(p: ProbedServer): string {
  return p.state.rpcPort ? `${p.state.httpPort},${p.state.rpcPort}` : String(p.state.httpPort);
}

function toRow(p: ProbedServer): string[] {
  let status: string = p.status;
  if (p.status === 'dead' && p.strays.length > 0) status = `dead (${p.strays.length} stray processes: grpst stop ${p.state.name})`;
  if (p.status === 'draining') status = `draining (since ${p.drainingSince})`;
  if (p.state.unreadable) status += ` (state file unreadable: ${p.state.unreadable}; ${p.status === 'dead' ? `grpst stop ${p.state.name} removes it` : 'found from its process'})`;
  return [ports(p), p.state.name, String(p.state.pid), p.state.deployPath, status];
}

function toJson(p: ProbedServer) {
  const s = p.state;
  return { name: s.name, pid: s.pid, status: p.status, httpPort: s.httpPort, rpcPort: s.rpcPort ?? null, host: s.host, deployPath: s.deployPath, backend: s.backend, logFile: s.logFile, startedAt: s.startedAt, drainingSince: p.drainingSince ?? null, stateUnreadable: s.unreadable ?? null, strayPids: p.strays };
}
