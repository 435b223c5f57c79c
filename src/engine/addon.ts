// Finds and loads the native addon. Before the first load a child process loads it and calls
// probe(), so a broken or mismatched binary gives a clear error instead of crashing this process.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missingTool } from '../util/errors.js';
import type { NativeAddon, NativeProbe } from './native.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the built addon lives (GRPST_NATIVE_ADDON overrides it). */
export function addonPath(): string {
  return process.env.GRPST_NATIVE_ADDON ?? join(packageRoot, 'native', 'build', 'Release', 'grpst_native.node');
}

const rebuildHint = 'build it with `npm run build:native` (needs cmake and a C++ compiler: sudo apt-get install -y cmake g++ make)';

let probed: NativeProbe | undefined;
let loaded: NativeAddon | undefined;

/** Loads the addon in a child process and returns its probe(); throws a GrpstError if that fails. */
export function probeAddon(path = addonPath()): NativeProbe {
  if (path === addonPath() && probed) return probed;
  if (!existsSync(path)) throw missingTool(`the native runtime is not built: ${path} is missing`, rebuildHint);
  const script = `process.stdout.write(JSON.stringify(require(${JSON.stringify(path)}).probe()))`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0 || r.error) {
    const why = r.error?.message ?? (r.signal ? `killed by ${r.signal}` : (r.stderr || '').trim().split('\n').slice(-3).join(' '));
    throw missingTool(`the native runtime at ${path} does not load: ${why}`, rebuildHint);
  }
  let result: NativeProbe;
  try {
    result = JSON.parse(r.stdout) as NativeProbe;
  } catch {
    throw missingTool(`the native runtime at ${path} answered its probe with garbage`, rebuildHint);
  }
  if (path === addonPath()) probed = result;
  return result;
}

/** The addon, probed once per process then loaded in-process. */
export function loadAddon(): NativeAddon {
  if (loaded) return loaded;
  const path = addonPath();
  probeAddon(path);
  const require = createRequire(import.meta.url);
  loaded = require(path) as NativeAddon;
  return loaded;
}
