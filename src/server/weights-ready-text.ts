// How the ready line tells where the model's weights are: whether their files may change under the
// server (mapped, or read into memory of its own), and whether they are locked in RAM.
import type { WeightsInfo } from '../engine/types.js';

export function weightsReadyText(w: WeightsInfo): string {
  // A GPU engine holds nothing on the host to map or lock: use_mlock was not applied, and the line says so.
  if (w.hostCopyReleased) return `weights on the GPU (host copy released${w.lockAsked ? ', so use_mlock has nothing to lock' : ''})`;
  const held = w.mapped ? 'weights mapped' : 'weights read into memory';
  if (!w.lockAsked) return held;
  return w.locked ? `${held} and locked` : `${held}, not locked`;
}
