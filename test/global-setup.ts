// Runs once, before any test file, in vitest's main process:
// - writes every shared fixture under .cache/fixtures, so the test files, which run two at a time,
//   only ever read them (two writers of one folder would race);
// - points TMPDIR at a folder of this run, which the workers, and every process they start,
//   inherit, and removes it at the end: what a test leaves in its temporary folders (homes, copied
//   checkpoints, engines, logs) goes with it.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { awqCheckpoint, outlierCheckpoint } from './e2e/build-helpers.js';
import { checkpoint, type CheckpointName } from './helpers/fixtures.js';
import { fp8Checkpoint } from './helpers/fp8-checkpoint.js';
import { LORA_NAMES, loraAdapter } from './helpers/lora-fixtures.js';

export default function setup(): () => void {
  for (const name of ['tiny-a', 'tiny-b', 'tiny-yarn'] as CheckpointName[]) {
    for (const dtype of ['bfloat16', 'float16', 'float32'] as const) checkpoint(name, dtype);
  }
  checkpoint('tiny-moe');
  awqCheckpoint('tiny-a', 32);
  awqCheckpoint('tiny-moe', 16);
  outlierCheckpoint('tiny-b');
  fp8Checkpoint();
  for (const name of LORA_NAMES) loraAdapter(name);

  const runTmp = mkdtempSync(join(tmpdir(), 'grpst-tests-'));
  // As /tmp itself: tests that run a command as another user (nobody) must reach their folders.
  chmodSync(runTmp, 0o1777);
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = runTmp;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(runTmp, { recursive: true, force: true });
  };
}
