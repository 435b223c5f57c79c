// Rank > 0 of a tensor-parallel engine, started by rank 0 (tp-launch.ts), never by hand:
//   node tp-worker.js ENGINE_DIR RANK      with GRPST_TP_NCCL_ID and GRPST_TP_LOAD_OPTIONS set.
// It ignores SIGTERM / SIGINT (`grpst stop` signals the whole group; rank 0 drains its requests,
// which needs every rank, then closes the engine, which ends this process) and exits when its stdin,
// a pipe from rank 0, closes: rank 0 is gone and no step will come.
import { runTensorParallelRank } from '../engine/tensor-parallel.js';
import type { LoadOptions } from '../engine/types.js';
import { errorText } from '../util/errors.js';
import { loadOptionsEnv, multicastOffEnv, ncclIdEnv } from './tp-launch.js';

async function main(): Promise<number> {
  const [dir, rankArg] = process.argv.slice(2);
  const rank = Number(rankArg);
  const ncclId = process.env[ncclIdEnv];
  if (!dir || !ncclId) {
    process.stderr.write(`tp-worker: started without an engine folder and ${ncclIdEnv}; rank 0 (grpst serve) starts the workers\n`);
    return 2;
  }
  Object.assign(process.env, multicastOffEnv);
  process.on('SIGTERM', () => undefined);
  process.on('SIGINT', () => undefined);
  // The native thread may be blocked in NCCL: only SIGKILL ends the process for sure.
  const orphaned = () => {
    process.stderr.write(`tensor parallel rank ${rank}: rank 0 is gone; exiting\n`);
    process.kill(process.pid, 'SIGKILL');
  };
  process.stdin.on('end', orphaned);
  process.stdin.on('error', orphaned);
  process.stdin.resume();
  const load = JSON.parse(process.env[loadOptionsEnv] ?? '{}') as LoadOptions;
  try {
    await runTensorParallelRank(dir, rank, ncclId, load);
    return 0;
  } catch (err) {
    process.stderr.write(`tensor parallel rank ${rank}: ${errorText(err)}\n`);
    return 1;
  }
}

// Exit without waiting on stdin, which stays open as long as rank 0 lives.
void main().then((code) => process.exit(code));
