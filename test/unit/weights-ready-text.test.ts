// The ready line's account of the weights, as the runtime reports them (EngineInfo.weights).
import { describe, expect, it } from 'vitest';
import type { WeightsInfo } from '../../src/engine/types.js';
import { weightsReadyText } from '../../src/server/weights-ready-text.js';

const held: WeightsInfo = { mapped: true, lockAsked: false, locked: false, bytes: 1 << 20, hostCopyReleased: false };

describe('weightsReadyText', () => {
  it('held on the host: mapped or read, locked or not', () => {
    expect(weightsReadyText(held)).toBe('weights mapped');
    expect(weightsReadyText({ ...held, mapped: false })).toBe('weights read into memory');
    expect(weightsReadyText({ ...held, lockAsked: true, locked: true })).toBe('weights mapped and locked');
    expect(weightsReadyText({ ...held, mapped: false, lockAsked: true })).toBe('weights read into memory, not locked');
  });

  it('on the GPU with the host copy released: neither mapped nor locked, whatever was asked', () => {
    expect(weightsReadyText({ ...held, hostCopyReleased: true })).toBe('weights on the GPU (host copy released)');
    expect(weightsReadyText({ ...held, mapped: false, hostCopyReleased: true })).toBe('weights on the GPU (host copy released)');
    expect(weightsReadyText({ ...held, lockAsked: true, hostCopyReleased: true })).toBe('weights on the GPU (host copy released, so use_mlock has nothing to lock)');
  });
});
