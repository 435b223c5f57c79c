// `device: cuda` (or `grpst serve --device cuda`) on a runtime built without the CUDA backend is
// refused before anything is deployed or listens: found by the load, it would cost a spawn and a
// failed start, or a server that listens and then exits.
import { missingTool } from '../util/errors.js';

export interface DeviceAsker {
  /** Who asks, in words: "conf/x.yml asks for device cuda", "--device cuda asks for the GPU". */
  asks: string;
  /** How to ask for another one there, e.g. "set device: cpu or auto in the conf". */
  change: string;
}

export async function requireDeviceBuilt(device: string | undefined, from: DeviceAsker): Promise<void> {
  if (device !== 'cuda') return;
  const { probeAddon } = await import('../engine/addon.js');
  if (probeAddon().cuda) return;
  throw missingTool(
    `${from.asks}, but this build of the native runtime has only the CPU backend`,
    `${from.change}, or install the CUDA toolkit (nvcc, cuBLAS) and rebuild with \`npm run build:native\``,
  );
}
