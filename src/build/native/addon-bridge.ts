// The runtime bridge over the native addon (calibration statistics, full-distribution scoring).
import { missingTool } from '../../util/errors.js';
import type { RuntimeBridge } from './runtime-bridge.js';

export async function createAddonBridge(): Promise<RuntimeBridge> {
  throw missingTool('this build of grpst has no calibration and scoring entries in its native runtime yet', 'build with --backend trtllm, or a format that needs no calibration');
}
