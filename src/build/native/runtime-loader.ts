// Loads the runtime bridge on first use, so that dry runs, the trtllm backend and bad-input checks
// work without the native addon.
import { missingTool } from '../../util/errors.js';
import type { RuntimeBridge } from './runtime-bridge.js';

let cached: Promise<RuntimeBridge> | undefined;

export function loadRuntimeBridge(): Promise<RuntimeBridge> {
  cached ??= import('./addon-bridge.js')
    .then((m) => m.createAddonBridge())
    .catch((e: unknown) => {
      cached = undefined;
      if (e instanceof Error && 'exitCode' in e) throw e;
      throw missingTool(`the native runtime could not be loaded: ${(e as Error).message}`, 'build it with `npm run build:native` (needs cmake and a C++ compiler)');
    });
  return cached;
}
