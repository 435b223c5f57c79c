// A conf that asks for `device: cuda` on a runtime built without the CUDA backend is refused
// before anything is deployed: found by the daemon, it would cost a spawn and a failed start.
import { missingTool } from '../util/errors.js';

export async function requireDeviceBuilt(device: string | undefined, conf: string): Promise<void> {
  if (device !== 'cuda') return;
  const { probeAddon } = await import('../engine/addon.js');
  if (probeAddon().cuda) return;
  throw missingTool(
    `${conf} asks for device cuda, but this build of the native runtime has only the CPU backend`,
    'set device: cpu or auto in the conf, or install the CUDA toolkit (nvcc, cuBLAS) and rebuild with `npm run build:native`',
  );
}
