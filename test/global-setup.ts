// Runs once, before any test file: writes every shared fixture under .cache/fixtures, so the test
// files, which run two at a time, only ever read them (two writers of one folder would race).
import { awqCheckpoint, outlierCheckpoint } from './e2e/build-helpers.js';
import { checkpoint, type CheckpointName } from './helpers/fixtures.js';
import { fp8Checkpoint } from './helpers/fp8-checkpoint.js';

export default function setup(): void {
  for (const name of ['tiny-a', 'tiny-b', 'tiny-yarn'] as CheckpointName[]) {
    for (const dtype of ['bfloat16', 'float16', 'float32'] as const) checkpoint(name, dtype);
  }
  awqCheckpoint('tiny-a', 32);
  outlierCheckpoint('tiny-b');
  fp8Checkpoint();
}
