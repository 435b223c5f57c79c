// Is a server process (or anything of its process group) still alive? Zombies count as dead, and
// a pid reused by an unrelated process is told apart by its /proc start time.
import fs from 'node:fs';

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or undefined off Linux. */
export function procStartTime(pid: number): string | undefined {
  const stat = readStat(pid);
  return stat?.fields[19];
}

interface ProcStat {
  state: string;
  pgrp: number;
  /** Fields after the command name, starting with the state (field 3). */
  fields: string[];
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses; everything after the last ")" is fixed.
  const fields = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  return { state: fields[0], pgrp: Number(fields[2]), fields };
}

const haveProc = fs.existsSync('/proc/self/stat');

/** The command line of a process (Linux), or undefined. */
export function procArgv(pid: number): string[] | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return undefined;
  }
}

export function pidAlive(pid: number, procStart?: string): boolean {
  if (haveProc) {
    const stat = readStat(pid);
    if (!stat || stat.state === 'Z' || stat.state === 'X') return false;
    return procStart === undefined || stat.fields[19] === procStart;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Live (non-zombie) members of a process group. */
export function groupMembers(pgid: number): number[] {
  if (!haveProc) {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const members: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') members.push(Number(entry));
  }
  return members;
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  // -1, 0 and 1 would reach every process, this process's own group, or init.
  if (!Number.isInteger(pgid) || pgid <= 1) return;
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until the group is empty; false when the deadline passed first. */
export async function waitGroupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (groupMembers(pgid).length === 0) return true;
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
}
