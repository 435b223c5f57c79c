// `grpst serve`: the server in the foreground, for containers, systemd and the daemon that
// `grpst start` launches. Native engines are served in this process; TensorRT-LLM engines by a
// trtllm-serve child in the same process group. SIGTERM drains (stop accepting, in-flight
// requests finish) and exits 0.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { modelDirConf } from '../config/model-dir-conf.js';
import { loadDeployment, type Deployment } from '../config/resolve.js';
import { checkTokenIds } from '../config/token-ids.js';
import { drainTimeoutS } from '../config/paths.js';
import type { GenerationEngine, LoadOptions } from '../engine/types.js';
import { ExitCode } from '../util/errors.js';
import { createLogger, rotateStale, scheduleDailyRotation, type Logger } from './log-file.js';
import { atomicWrite, drainMarkerOf, grpstServerOn, removeOwnState } from './state.js';
import { requireTrtllmServe, trtllmServeArgs, writeTrtllmExtraOptions } from './trtllm.js';
import { freePort, requireListenable, type ListenSettings } from './ports.js';
import { requireDeviceBuilt } from './device-check.js';
import { checkModelDirLimits } from './model-dir-limits.js';
import type { ServedKvCacheDtype } from '../build/choices.js';
import { checkEngineLoads } from './load-check.js';
import { checkTensorParallelHost, launchTensorParallelWorkers, tensorParallelSize, type TensorParallelGroup } from './tp-launch.js';

export interface ServeInput {
  /** Either the conf file or modelDir (a folder served with default settings). */
  inferenceConf?: string;
  modelDir?: string;
  servedModelName?: string;
  device?: 'cpu' | 'cuda' | 'auto';
  /** --host / --port: win over the server conf. */
  listen?: { host?: string; port?: number };
  serverConf?: string;
  /** Base of relative conf paths (the deploy folder); default: the current folder. */
  deployPath?: string;
  /** Daemon mode: stdout/stderr already append to this file; rotate it daily. */
  logFile?: string;
  /** Daemon mode: write the bound port here once listening. */
  portFile?: string;
  /** Processes (GPUs) to split the model across (--mpi_np); a native engine's own tp_size when 1. */
  tpSize?: number;
  /** --max_model_len (with modelDir): the served context, at most the folder's. */
  maxModelLen?: number;
  /** --max_num_seqs / --max_num_batched_tokens (with modelDir): the conf's max_batch_size / max_num_tokens. */
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  /** --kv_cache_dtype (with modelDir): the conf's kv_cache_dtype. */
  kvCacheDtype?: ServedKvCacheDtype;
  /** --speculative_config (with modelDir): the conf's speculative_config. */
  speculativeConfig?: Record<string, unknown>;
  /** --lora_modules (with modelDir): name=path entries, paths absolute. */
  loraModules?: string[];
  /** --api_key: wins over GRPST_API_KEY and the server conf's key. */
  apiKey?: string;
  /** A server for one `grpst chat --model_dir` session: it stops when the process that started it is gone. */
  exitWithParent?: boolean;
}

export async function runServe(input: ServeInput, log: Logger = createLogger()): Promise<number> {
  const listening = exitOnSignalUntilListening(log, input.portFile);
  if (input.exitWithParent) watchParent(log);
  // Seconds a drain may take before the remaining requests are cancelled (stop's SIGKILL comes
  // later anyway); a value the variable does not take is refused before anything listens.
  const drainMs = drainTimeoutS() * 1000;
  const deployPath = path.resolve(input.deployPath ?? process.cwd());
  // Before this run's first line: the conf's log_backup_count is applied once the conf is read.
  if (input.logFile) rotateStale(input.logFile, Number.MAX_SAFE_INTEGER);
  const inferenceConf = input.inferenceConf ?? `--model_dir ${input.modelDir}`;
  const inferenceText =
    input.modelDir === undefined
      ? undefined
      : modelDirConf(input.modelDir, {
          servedModelName: input.servedModelName,
          device: input.device,
          maxSeqLen: input.maxModelLen,
          maxBatchSize: input.maxNumSeqs,
          maxNumTokens: input.maxNumBatchedTokens,
          kvCacheDtype: input.kvCacheDtype,
          speculativeConfig: input.speculativeConfig,
          loraModules: input.loraModules,
        });
  const sizing = input.maxModelLen ?? input.maxNumSeqs ?? input.maxNumBatchedTokens;
  if (input.modelDir !== undefined && sizing !== undefined) await checkModelDirLimits(input.modelDir, input);
  log.info(`grpst serve (pid ${process.pid}): ${inferenceConf}${input.serverConf ? ` + ${input.serverConf}` : ''}`);
  const d = loadDeployment({ inferenceConf, inferenceText, serverConf: input.serverConf, deployPath, listen: input.listen, apiKey: input.apiKey });
  for (const warning of d.warnings) log.warn(warning);
  if (d.backend === 'native') await requireDeviceBuilt(d.runtime.load.device, input.modelDir !== undefined ? { asks: '--device cuda asks for the GPU', change: 'pass --device cpu or auto' } : { asks: `${inferenceConf} asks for device cuda`, change: 'set device: cpu or auto in the conf' });
  // Before listening: what the load would refuse ends the command here (exit 2), not after the port is open.
  // A --model_dir conf is written by grpst, so its keys are named by the flag, not by a line of it.
  await checkEngineLoads(d, input.modelDir !== undefined ? { location: () => `--model_dir ${input.modelDir}` } : {});
  await requireListenable(d.runtime.server.host, d.runtime.server.port, listenSettings(input), (port) => grpstServerOn(port));
  logGenerationDefaults(d, log);
  const stopRotation = input.logFile ? scheduleDailyRotation(input.logFile, d.log.backupCount) : () => undefined;
  try {
    if (d.backend === 'trtllm') return await serveTrtllm(d, input, log, listening);
    return await serveNative(d, input, log, listening, drainMs);
  } finally {
    stopRotation();
  }
}

async function serveNative(d: Deployment, input: ServeInput, log: Logger, listening: () => void, drainMs: number): Promise<number> {
  const tp = tensorParallelSize(d.enginePath, input.tpSize ?? 1);
  const [{ startServer }, { Tokenizer }, { ChatTemplate }, { ServerConstraintCompiler }] = await Promise.all([
    import('../server/index.js'),
    import('../chat/tokenizer.js'),
    import('../chat/chat-template.js'),
    import('../structured/server-compiler.js'),
  ]);
  const tokenizer = Tokenizer.fromDir(d.tokenizerPath);
  const template = ChatTemplate.fromDir(d.tokenizerPath);
  checkTokenIds(d, tokenizer.vocabSize, d.inferenceConfFile);
  log.info(`loading ${d.enginePath} (${d.runtime.load.device ?? 'auto'}${tp > 1 ? `, tensor parallel ${tp}` : ''})`);
  const group = tp > 1 ? await startGroup(d, tp, log) : undefined;
  // A stop while the engine loads cancels the load (it ends before its next layer) instead of
  // waiting for it: an 8B upload from a cold page cache takes tens of seconds.
  const loadAbort = new AbortController();
  const engine = loadNativeEngine(d.enginePath, d.runtime.load, group, loadAbort.signal);
  let loaded = false;
  // The server takes the rejection once it listens; until then it must not count as unhandled.
  engine.then(() => (loaded = true), () => undefined);
  const constraints = new ServerConstraintCompiler(tokenizer);
  constraints.warm(); // while the engine loads on its worker thread
  const extraRoutes = d.runtime.server.webUi ? (await import('../server/webui/routes.js')).webUiRoutesIfPresent((line) => log.warn(line)) : [];
  const server = await startServer({ engine, tokenizer, template, constraints, extraRoutes, modelDir: d.enginePath, log: (line, level) => (level === 'error' ? log.error(line) : level === 'warn' ? log.warn(line) : log.info(line)) }, d.runtime.server);
  if (input.portFile) atomicWrite(input.portFile, `${server.port}\n`);
  const bound = d.runtime.server.host;
  // server.url is where a client on this machine connects; the log also says what was bound.
  log.info(`listening on ${bound === '0.0.0.0' || bound === '::' ? `${bound}:${server.port} (all interfaces; ${server.url} from here)` : server.url} (model ${d.runtime.server.modelId})`);

  const done = new Promise<number>((resolve) => {
    let draining = false;
    const drain = (signal: NodeJS.Signals) => {
      if (draining) {
        if (signal === 'SIGINT') {
          log.warn('second interrupt: cancelling the requests in flight');
          void server.close().then(() => {
            stoppedOnRequest(input.portFile);
            resolve(130);
          });
        }
        return;
      }
      draining = true;
      markDraining(input.portFile);
      if (!loaded) {
        log.info(`${signal} while the engine loads: cancelling the load, then exiting`);
        loadAbort.abort();
      } else log.info(`${signal}: draining (no new requests; in-flight requests finish)`);
      void server
        .drain(drainMs)
        .then(() => engine.then((e) => e.close(), () => undefined))
        // Ranks of a cancelled load may wait in NCCL for rank 0, which never comes: nothing to drain there.
        .then(() => (loaded ? group?.stop() : group?.kill()))
        .then(() => {
          log.info('drained; exiting');
          stoppedOnRequest(input.portFile);
          resolve(0);
        });
    };
    listening();
    process.on('SIGTERM', () => drain('SIGTERM'));
    process.on('SIGINT', () => drain('SIGINT'));
  });
  const failed = server.ready.then(
    () => undefined,
    async () => {
      if (loadAbort.signal.aborted) return undefined; // stopped while loading: the drain exits 0
      // A server that cannot load its engine must not linger half-alive: `start` sees it exit
      // and shows its log, where the server wrote the error.
      group?.kill();
      await server.close();
      return ExitCode.failed;
    },
  );
  // A rank that dies takes the group with it: rank 0 would wait for it in NCCL forever.
  const rankLost = group
    ? group.failed.then(async (why) => {
        log.error(`${why}; the tensor-parallel group cannot go on, stopping the server`);
        group.kill();
        process.exit(ExitCode.failed);
        return ExitCode.failed;
      })
    : new Promise<number>(() => undefined);
  const early = await Promise.race([failed, done, rankLost]);
  return early ?? (await done);
}

// The runtime is imported when serving starts: the other commands stay quick to start and work
// where the native addon is not built.
async function loadNativeEngine(enginePath: string, options: LoadOptions, group: TensorParallelGroup | undefined, signal: AbortSignal): Promise<GenerationEngine> {
  if (group) {
    const { loadEngineFolder } = await import('../engine/engine-folder.js');
    return loadEngineFolder(enginePath, options, { ncclId: group.ncclId }, signal);
  }
  const { loadEngine } = await import('../engine/index.js');
  return loadEngine(enginePath, options, signal);
}

/** Ranks 1..tp-1 of a tensor-parallel engine, started before rank 0 (this process) joins them. */
async function startGroup(d: Deployment, tp: number, log: Logger): Promise<TensorParallelGroup> {
  const { ncclUniqueId, tensorParallelUnavailable } = await import('../engine/tensor-parallel.js');
  checkTensorParallelHost(tp, tensorParallelUnavailable);
  return launchTensorParallelWorkers(d.enginePath, tp, ncclUniqueId(), d.runtime.load, { info: (l) => log.info(l), error: (l) => log.error(l) });
}

async function serveTrtllm(d: Deployment, input: ServeInput, log: Logger, listening: () => void): Promise<number> {
  const executable = requireTrtllmServe(d.enginePath);
  const host = d.runtime.server.host;
  const port = d.runtime.server.port === 0 ? await freePort(host) : d.runtime.server.port;
  const extra = writeTrtllmExtraOptions(d, path.join(d.deployPath, 'conf'));
  const argv = trtllmServeArgs(d, { host, port, tpSize: input.tpSize ?? 1, extraOptionsFile: extra });
  log.info(`serving the TensorRT-LLM engine ${d.enginePath} with ${executable} ${argv.join(' ')}`);
  // Same process group: `grpst stop` signals both; stdout/stderr go where ours go (the log).
  const child = spawn(executable, argv, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, NCCL_NVLS_ENABLE: '0' } });
  if (input.portFile) atomicWrite(input.portFile, `${port}\n`);
  // Forward SIGTERM (docker stop and `kill` reach only this process; a repeat is harmless to
  // uvicorn). SIGINT from a terminal already reaches the whole group: forwarding would turn it
  // into uvicorn's "second interrupt, exit now".
  let stopping = false;
  const onTerm = () => {
    stopping = true;
    markDraining(input.portFile);
    log.info('SIGTERM: trtllm-serve drains and exits');
    child.kill('SIGTERM');
  };
  const onInt = () => undefined;
  listening();
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  return await new Promise<number>((resolve) => {
    child.on('error', (err) => {
      log.error(`trtllm-serve could not be started: ${err.message}`);
      resolve(ExitCode.failed);
    });
    child.on('exit', (code, signal) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      log.info(`trtllm-serve exited (${signal ?? `code ${code}`})`);
      if (stopping && code === 0) stoppedOnRequest(input.portFile);
      resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGINT' ? 2 : 15));
    });
  });
}

/** The flag or conf key that sets the address and the port, for a refusal to name. */
function listenSettings(input: ServeInput): ListenSettings {
  const conf = input.serverConf;
  return {
    host: input.listen?.host !== undefined || !conf ? '--host' : `interface.host in ${conf} (or pass --host)`,
    port: input.listen?.port !== undefined || !conf ? '--port' : `interface.port in ${conf} (or pass --port)`,
  };
}

/** Says where requests' sampling defaults come from when the checkpoint supplies some. */
function logGenerationDefaults(d: Deployment, log: Logger): void {
  const g = d.generationDefaults;
  if (!g) return;
  for (const why of g.ignored) log.warn(`${g.file}: ${why}: ignored`);
  if (g.applied) log.info(`sampling defaults from ${g.file}: ${g.applied} (a request's own fields and the conf's sampling win; generation_config: none turns this off)`);
}

/** Tells `grpst ps` this daemon is draining (daemon mode only: the port file is under GRPST_HOME). */
function markDraining(portFile: string | undefined): void {
  if (!portFile) return;
  try {
    atomicWrite(drainMarkerOf(portFile), `${new Date().toISOString()}\n`);
  } catch {
    // ps then shows the server as unhealthy while it drains; the drain itself goes on.
  }
}

/**
 * Stops this server (as SIGTERM does) once the process that started it is gone, killed ones
 * included: the parent pid changes when the parent dies (the orphan is adopted), which a pid
 * reused by another process cannot fake.
 */
function watchParent(log: Logger): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    log.info(`the process that started this server (pid ${parent}) is gone: stopping`);
    process.kill(process.pid, 'SIGTERM');
  }, 500);
  timer.unref();
}

/** Daemon mode: a server that stopped as asked takes its state with it (state.ts, removeOwnState). */
function stoppedOnRequest(portFile: string | undefined): void {
  if (portFile) removeOwnState(portFile);
}

/**
 * Until the server listens there is nothing to drain: a stop then exits cleanly (0) instead of
 * dying of the signal (143), which a service manager counts as a failure. Returns the call that
 * hands the signals over to the server's own drain.
 */
function exitOnSignalUntilListening(log: Logger, portFile: string | undefined): () => void {
  const exit = (signal: NodeJS.Signals) => {
    log.info(`${signal} before the server listened: exiting`);
    stoppedOnRequest(portFile);
    process.exit(0);
  };
  process.on('SIGTERM', exit);
  process.on('SIGINT', exit);
  return () => {
    process.off('SIGTERM', exit);
    process.off('SIGINT', exit);
  };
}
