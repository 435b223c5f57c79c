// `grpst chat --model_dir DIR|OWNER/NAME`: Ollama's `ollama run MODEL` in one command. The model is
// served for the session by a `grpst serve` child on a free loopback port (its own process group,
// so a Ctrl-C that stops an answer does not reach it; --exit_with_parent, so it also ends when this
// process is killed), the chat talks to it as to any server, and stops it at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tailLines } from '../daemon/log-file.js';
import { pidAlive, procStartTime } from '../daemon/processes.js';
import { cliEntry } from '../daemon/spawn.js';
import { ExitCode, GrpstError, type ExitCodeValue } from '../util/errors.js';

export interface LocalServer {
  url: string;
  pid: number;
  /** SIGTERM, then the child's exit (SIGKILL after 30 s); removes its temporary folder. */
  stop(): Promise<void>;
}

const exitCodes = new Set<number>(Object.values(ExitCode));

function exited(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode ?? 1);
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

const SESSION_PREFIX = 'grpst-chat-session-';
const OWNERS = 'owners.json';  // the chat's and the server's pid and /proc start time

interface Owner {
  pid: number;
  start?: string;
}
const ownerOf = (pid: number): Owner => ({ pid, start: procStartTime(pid) });
// (daemon/processes.ts's rule: zombies are dead, a reused pid is told apart by its start time)
const ownerAlive = (o: Owner | undefined) => typeof o?.pid === 'number' && o.pid > 0 && pidAlive(o.pid, o.start);

/**
 * Removes the session folders of chats that were killed outright (SIGKILL leaves no chance to
 * clean up): those whose chat and server processes are both gone. A folder without its owners
 * file (another chat starting right now) is left alone.
 */
function sweepStaleSessions(tmpdir = os.tmpdir()): void {
  let names: string[];
  try {
    names = fs.readdirSync(tmpdir).filter((n) => n.startsWith(SESSION_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = path.join(tmpdir, name);
    try {
      const owners = JSON.parse(fs.readFileSync(path.join(dir, OWNERS), 'utf8')) as { chat?: Owner; server?: Owner };
      if (!ownerAlive(owners.chat) && !ownerAlive(owners.server)) fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // no owners file yet, or not ours to read: leave it
    }
  }
}

export async function startLocalServer(modelDir: string, onLoading: (text: string) => void): Promise<LocalServer> {
  sweepStaleSessions();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), SESSION_PREFIX));
  const portFile = path.join(tmp, 'port');
  const logFile = path.join(tmp, 'serve.log');
  const fd = fs.openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    // execArgv carries a loader (tsx) this process runs under, so the child runs the same code.
    child = spawn(process.execPath, [...process.execArgv, cliEntry(), 'serve', '--model_dir', modelDir, '--host', '127.0.0.1', '--port', '0', '--port_file', portFile, '--exit_with_parent'], {
      detached: true,
      stdio: ['ignore', fd, fd],
      // A server only this session talks to, on loopback: no key (an empty one is unset).
      env: { ...process.env, GRPST_API_KEY: '' },
    });
  } finally {
    fs.closeSync(fd);
  }
  fs.writeFileSync(path.join(tmp, OWNERS), JSON.stringify({ chat: ownerOf(process.pid), server: child.pid ? ownerOf(child.pid) : undefined }));
  const done = exited(child);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await done;
      clearTimeout(killer);
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  onLoading(`loading ${modelDir}`);
  for (;;) {
    const port = fs.existsSync(portFile) ? Number(fs.readFileSync(portFile, 'utf8').trim()) : NaN;
    if (Number.isInteger(port) && port > 0) return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop };
    if (child.exitCode !== null || child.signalCode !== null) {
      // The server's own refusal (a folder that is no model, a bad flag) is the chat's error.
      const code = child.exitCode ?? 1;
      const said = tailLines(logFile, 12).join('\n');
      await stop();
      const message = /^error: (.*)$/m.exec(said)?.[1] ?? `the server for ${modelDir} exited with ${code} before it listened`;
      const hint = /^ {2}fix: (.*)$/m.exec(said)?.[1];
      throw new GrpstError(message, { exitCode: (exitCodes.has(code) ? code : ExitCode.failed) as ExitCodeValue, hint: hint ?? (said ? `its log ended:\n${said}` : undefined) });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
