// `grpst start`: verify and extract the archive, validate both confs, refuse a running name or a
// taken port, launch the daemon, wait for /health. Everything is checked before anything starts,
// and a daemon that dies while starting leaves no state behind, only its log.
import fs from 'node:fs';
import path from 'node:path';
import { defaultLimits, extractArchive } from '../archive/extract.js';
import { manifestName } from '../archive/manifest.js';
import { drainTimeoutS, isInside, lifecyclePaths, validateName } from '../config/paths.js';
import { loadDeployment, type Deployment } from '../config/resolve.js';
import type { Reporter } from '../build/progress.js';
import { checkTokenIds } from '../config/token-ids.js';
import { onOutputClosed } from '../util/closed-output.js';
import { isDiskFull } from '../util/disk-full.js';
import { badInput, failed } from '../util/errors.js';
import { chooseConfs, describeConfs } from './conf-choice.js';
import { requireDeviceBuilt } from './device-check.js';
import { verifyEngineFiles } from './engine-check.js';
import { checkEngineLoads } from './load-check.js';
import { checkMpiNp } from './gpus.js';
import { logFileIn, tailLines } from './log-file.js';
import { requireListenable } from './ports.js';
import { healthUrl, probeHealth } from './probe.js';
import { groupMembers, pidAlive, procStartTime, signalGroup, sleep, waitGroupGone } from './processes.js';
import { spawnDaemon } from './spawn.js';
import { drainMarkerOf, drainingSince, ensureHome, grpstServerOn, homeDiskFull, lockName, portFileOf, readState, removeState, writeState, type ServerState } from './state.js';
import { requireTrtllmServe } from './trtllm.js';
import { checkTensorParallelHost, multicastOffEnv, tensorParallelSize } from './tp-launch.js';
import { makeFolders, nearestExisting } from '../util/folders.js';

export interface Progress {
  step(text: string): void;
  warn(text: string): void;
  /** The start was interrupted (Ctrl-C): the last word before the process exits. */
  interrupted?(text: string): void;
}

export interface StartInput {
  mar: string;
  inferenceConf?: string;
  serverConf?: string;
  name: string;
  mpiNp: number;
  timeoutS: number;
  home: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  progress: Progress;
}

export interface StartResult {
  state: ServerState;
  url: string;
  modelId: string;
  /** server.yml's api_key (or GRPST_API_KEY) is set: requests need the Bearer header. */
  authRequired: boolean;
}

export async function startServerDaemon(input: StartInput): Promise<StartResult> {
  validateName(input.name);
  const cwd = input.cwd ?? process.cwd();
  const env = input.env ?? process.env;
  const paths = lifecyclePaths(input.name, input.home);
  // The environment's settings are checked before anything is touched: a typo in one is refused, not replaced by its default.
  const drainLimitS = drainTimeoutS(env);
  const limits = defaultLimits(env);
  ensureHome(input.home);
  checkMpiNp(input.mpiNp);
  const release = lockName(input.name, input.home);
  const staging = path.join(input.home, `.staging-${input.name}-${process.pid}`);
  let spawned: ServerState | undefined;
  // Ctrl-C or SIGTERM while starting: the default action would end the process with the
  // half-extracted staging folder (the engine's size) left in GRPST_HOME and, once the daemon is
  // launched, without a word about the server left loading. Handlers run between synchronous
  // steps, so never inside replaceDeploy's renames, and spawn and writeState are one step.
  const onSignal = (signal: NodeJS.Signals) => {
    fs.rmSync(staging, { recursive: true, force: true });
    release();
    const p = input.progress;
    (p.interrupted ? p.interrupted.bind(p) : p.warn.bind(p))(
      spawned
        ? `${signal}: stopped waiting; ${input.name} goes on loading in the background (pid ${spawned.pid}): \`grpst ps\` shows it, \`grpst stop ${input.name}\` stops it`
        : `${signal}: start of ${input.name} interrupted; nothing was deployed or started`,
    );
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  for (const sig of signals) process.on(sig, onSignal);
  // Output closed (`grpst start ... | head -1`): the same cleanup, with no one left to tell.
  const forgetClosedOutput = onOutputClosed(() => {
    fs.rmSync(staging, { recursive: true, force: true });
    release();
  });
  try {
    clearDeadState(input, paths.state);
    removeAbandonedStaging(input.home, input.name);
    input.progress.step(`verifying and extracting ${input.mar}`);
    fs.rmSync(staging, { recursive: true, force: true });
    const { manifest } = await extractArchive(path.resolve(cwd, input.mar), staging, limits);
    fs.writeFileSync(path.join(staging, manifestName), JSON.stringify(manifest, null, 1));

    const confs = chooseConfs(input, staging, cwd, (text) => input.progress.warn(text));
    // Hugging Face ids the conf names are pulled here, in the foreground, not by the daemon.
    const { pullConfModels } = await import('../hub/conf-models.js');
    await pullConfModels(confs.inference.staged, staging, () => reporterOver(input.progress), 'grpst', paths.deploy);
    input.progress.step(`validating the confs (${describeConfs(confs)})`);
    const d = loadDeployment({
      inferenceConf: confs.inference.staged,
      serverConf: confs.server?.staged,
      deployPath: paths.deploy,
      checkRoot: staging,
      shownInference: confs.inference.shown,
      shownServer: confs.server?.shown,
      env,
    });
    for (const warning of d.warnings) input.progress.warn(warning);
    if (d.backend === 'trtllm') requireTrtllmServe(d.enginePath, env);
    else {
      const known = new Map(manifest.files.map((f) => [path.join(staging, ...f.path.split('/')), f.sha256]));
      let announced = false;
      const onHashing = () => {
        if (!announced) input.progress.step('verifying the engine files (sha256, once per engine)');
        announced = true;
      };
      await verifyEngineFiles(stagedPath(d.enginePath, paths.deploy, staging), input.home, { known, onHashing });
      await requireDeviceBuilt(d.runtime.load.device, { asks: `${confs.inference.shown} asks for device cuda`, change: 'set device: cpu or auto in the conf' });
      if (d.endTokenId !== undefined || d.padTokenId !== undefined || d.skipTokenIds !== undefined) {
        const { Tokenizer } = await import('../chat/tokenizer.js');
        checkTokenIds(d, Tokenizer.fromDir(stagedPath(d.tokenizerPath, paths.deploy, staging)).vocabSize, confs.inference.shown);
      }
      // An engine the archive holds is named as its file there: nothing is deployed yet.
      const archive = isInside(paths.deploy, d.enginePath) ? { folder: path.relative(paths.deploy, d.enginePath).split(path.sep).join('/'), mar: input.mar } : undefined;
      await checkEngineLoads(d, { engineDir: stagedPath(d.enginePath, paths.deploy, staging), archive, env });
    }
    let processes = input.mpiNp;
    if (d.backend === 'native') {
      // A tensor-parallel engine runs one process per GPU: its tp_size, whatever --mpi_np says (they must agree).
      processes = tensorParallelSize(stagedPath(d.enginePath, paths.deploy, staging), input.mpiNp);
      if (processes > 1) {
        const { tensorParallelUnavailable } = await import('../engine/tensor-parallel.js');
        checkTensorParallelHost(processes, tensorParallelUnavailable);
      }
    }
    await checkPort(d, input.home);
    checkLogDir(d.log.dir, paths.deploy);

    replaceDeploy(staging, paths.deploy, d);
    const logFile = logFileIn(d.log.dir);
    const portFile = portFileOf(paths);
    for (const stale of [portFile, drainMarkerOf(portFile)]) fs.rmSync(stale, { force: true });
    const logOffset = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
    const serveArgs = ['--inference_conf', path.join(paths.deploy, confs.inference.relative), '--deploy_path', paths.deploy, '--log_file', logFile, '--port_file', portFile, '--mpi_np', String(processes)];
    if (confs.server) serveArgs.push('--server_conf', path.join(paths.deploy, confs.server.relative));

    input.progress.step(`starting ${input.name}`);
    const pid = spawnDaemon({ serveArgs, cwd: paths.deploy, logFile, env: processes > 1 ? { ...env, ...multicastOffEnv } : env });
    const state: ServerState = {
      name: input.name,
      pid,
      pgid: pid,
      procStart: procStartTime(pid),
      deployPath: paths.deploy,
      host: d.runtime.server.host,
      httpPort: d.runtime.server.port,
      rpcPort: d.runtime.rpcPort,
      backend: d.backend,
      logFile,
      inferenceConf: path.join(paths.deploy, confs.inference.relative),
      serverConf: confs.server ? path.join(paths.deploy, confs.server.relative) : undefined,
      startedAt: new Date().toISOString(),
      authHealth: Boolean(d.runtime.server.apiKey && d.runtime.server.authHealth),
      drainTimeoutS: drainLimitS,
    };
    try {
      writeState(state, input.home);
    } catch (err) {
      // Without its state file the server would run unseen by ps and out of reach of stop.
      await abandon(state, input.home);
      throw err;
    }
    spawned = state;

    input.progress.step(`waiting for ${input.name} to load the model (pid ${pid})`);
    await waitHealthy(state, portFile, d.runtime.server.apiKey, input.timeoutS * 1000, logOffset, input.home);
    const url = healthUrl(state.host, state.httpPort).replace(/\/health$/, '');
    return { state, url, modelId: d.runtime.server.modelId, authRequired: Boolean(d.runtime.server.apiKey) };
  } catch (err) {
    // Unpacking or writing the state on a full disk: the disk and the fix, not a bare ENOSPC.
    throw isDiskFull(err) ? homeDiskFull(err, input.home) : err;
  } finally {
    for (const sig of signals) process.off(sig, onSignal);
    forgetClosedOutput();
    fs.rmSync(staging, { recursive: true, force: true });
    release();
  }
}

/** Where a path of the deploy folder lies while it is still staged. */
function stagedPath(p: string, deploy: string, staging: string): string {
  return isInside(deploy, p) ? path.join(staging, path.relative(deploy, p)) : p;
}

function clearDeadState(input: StartInput, stateFile: string): void {
  const previous = readState(input.name, input.home);
  if (!previous) {
    if (fs.existsSync(stateFile)) removeState(input.name, input.home);
    return;
  }
  if (pidAlive(previous.pid, previous.procStart)) {
    const since = drainingSince(input.name, input.home);
    if (since) {
      throw badInput(
        `${input.name} is still stopping (draining since ${since}, pid ${previous.pid})`,
        `wait for \`grpst stop ${input.name}\` to finish (\`grpst ps\` shows it), or start this one under another --name`,
      );
    }
    throw badInput(
      `${input.name} is already running (pid ${previous.pid}, port ${previous.httpPort})`,
      `stop it first with \`grpst stop ${input.name}\`, or start this one under another --name`,
    );
  }
  if (groupMembers(previous.pgid).length > 0) signalGroup(previous.pgid, 'SIGKILL');
  removeState(input.name, input.home);
  input.progress.warn(previous.unreadable ? `${input.name}'s state file was unreadable (${previous.unreadable}) and no server of it runs; it was cleared` : `${input.name} had died (pid ${previous.pid}); its state was cleared`);
}

// A start interrupted while extracting (Ctrl-C, a crash) leaves its staging folder; the pid in
// its name tells whether that start is still running.
function removeAbandonedStaging(home: string, name: string): void {
  const prefix = `.staging-${name}-`;
  for (const entry of fs.readdirSync(home)) {
    if (!entry.startsWith(prefix)) continue;
    const pid = Number(entry.slice(prefix.length));
    if (Number.isInteger(pid) && pid !== process.pid && !pidAlive(pid)) fs.rmSync(path.join(home, entry), { recursive: true, force: true });
  }
}

async function checkPort(d: Deployment, home: string): Promise<void> {
  const { host, port } = d.runtime.server;
  await requireListenable(host, port, { host: 'interface.host in the server conf', port: 'interface.port in the server conf (--server_conf)' }, (taken) => grpstServerOn(taken, home));
}

/**
 * A log_dir outside the deploy folder must exist before anything is deployed: found only after
 * the old deploy was replaced, it would leave the name half-started. It is made now (a log folder
 * made early costs nothing); permission bits alone cannot tell (root may write anywhere, yet not
 * make folders under /proc). One inside the deploy folder is made with it.
 */
function checkLogDir(dir: string, deploy: string): void {
  const fix = 'set log.log_dir in server.yml to a folder this user can write (a relative one lands in the deploy folder)';
  const at = nearestExisting(dir);
  if (!fs.statSync(at).isDirectory()) throw badInput(`log.log_dir ${dir} cannot be created: ${at} is a file`, fix);
  if (isInside(deploy, dir)) return;
  try {
    makeFolders(dir);
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw badInput(`log.log_dir ${dir} cannot be created (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, fix);
  }
}

// The deploy folder is replaced whole, so files of an older archive never linger; only its
// logs carry over. A folder grpst did not create is never deleted.
function replaceDeploy(staging: string, deploy: string, d: Deployment): void {
  if (fs.existsSync(deploy)) {
    if (!fs.existsSync(path.join(deploy, manifestName))) {
      throw badInput(`${deploy} exists and was not created by grpst start`, `move it away, set GRPST_HOME to another folder, or pick another --name`);
    }
    const oldLogs = path.join(deploy, path.relative(d.deployPath, d.log.dir));
    const newLogs = path.join(staging, path.relative(d.deployPath, d.log.dir));
    if (isInside(deploy, oldLogs) && fs.existsSync(oldLogs) && !fs.existsSync(newLogs)) {
      fs.mkdirSync(path.dirname(newLogs), { recursive: true });
      fs.renameSync(oldLogs, newLogs);
    }
    fs.rmSync(deploy, { recursive: true, force: true });
  }
  fs.renameSync(staging, deploy);
  makeFolders(d.log.dir);
}

async function waitHealthy(state: ServerState, portFile: string, apiKey: string | undefined, timeoutMs: number, logOffset: number, home: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!pidAlive(state.pid, state.procStart)) {
      await abandon(state, home);
      // A full disk takes the reason with it: the server's last words could not reach the log.
      if (noSpaceLeft(state.logFile)) throw failed(`${state.name} exited while starting: the disk of ${path.dirname(state.logFile)} is full, so the server could write neither its log nor its port file`, `free space on that disk, then start again`);
      throw failed(`${state.name} exited while starting${formatTail(state.logFile, logOffset)}`, `fix what the log says, then start again (full log: ${state.logFile})`);
    }
    // The daemon writes the port file once it listens: until then a /health answer on that port
    // is another server's (two starts racing for one port must not both report success).
    const bound = Number(readText(portFile));
    if (bound > 0 && state.httpPort === 0) {
      state.httpPort = bound;
      writeState(state, home);
    }
    if (bound > 0 && bound === state.httpPort) {
      const answer = await probeHealth(healthUrl(state.host, state.httpPort), { apiKey, timeoutMs: 2000 });
      if (answer === 'ok') return;
    }
    if (Date.now() >= deadline) {
      await abandon(state, home);
      throw failed(`${state.name} did not become healthy within ${timeoutMs >= 10_000 ? Math.round(timeoutMs / 1000) : Number((timeoutMs / 1000).toPrecision(2))} s${formatTail(state.logFile, logOffset)}`, `raise --timeout if the model needs longer to load (full log: ${state.logFile})`);
    }
    await sleep(200);
  }
}

async function abandon(state: ServerState, home: string): Promise<void> {
  signalGroup(state.pgid, 'SIGTERM');
  if (!(await waitGroupGone(state.pgid, 5000))) signalGroup(state.pgid, 'SIGKILL');
  await waitGroupGone(state.pgid, 5000);
  removeState(state.name, home);
}

function noSpaceLeft(file: string): boolean {
  try {
    return fs.statfsSync(path.dirname(file)).bavail === 0;
  } catch {
    return false;
  }
}

function formatTail(logFile: string, offset: number): string {
  const lines = tailLines(logFile, 30, offset);
  return lines.length === 0 ? ' (the log is empty)' : `; the last lines of its log:\n${lines.map((l) => `  | ${l}`).join('\n')}`;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

/** A pull's phases and notes as start's own progress lines (one spinner, no second one beside it). */
function reporterOver(p: Progress): Reporter {
  return { phase: (name, detail) => p.step(`${name}${detail ? `: ${detail}` : ''}`), progress: () => undefined, info: (line) => p.step(line), done: () => undefined, fail: () => undefined };
}
