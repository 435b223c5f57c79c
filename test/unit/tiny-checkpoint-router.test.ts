// writeTinyCheckpoint's optional `router` init: only the Qwen3-MoE routers change, by exactly the
// ratio of the bounds (a power of two keeps bf16 values exact); without it the routers are the
// linear layers' kind, so the fixtures (and their transformers references) stay as they were.
import { describe, expect, it } from 'vitest';
import { makeTensors, weightsDigest } from '../../src/model/tiny-checkpoint.js';
import { specFile } from '../helpers/fixtures.js';

const bf16ToF32 = (b: number) => new Float32Array(new Uint32Array([b << 16]).buffer)[0];

describe('tiny checkpoint router init', () => {
  const spec = specFile().checkpoints['tiny-moe'];
  const vocab = specFile().vocab_size;
  const init = specFile().init;
  const base = makeTensors(spec, vocab, init);

  it('leaves every tensor as it was when no router init is given', () => {
    const same = makeTensors(spec, vocab, { ...init, router: undefined });
    expect(weightsDigest(same)).toBe(weightsDigest(base));
  });

  it('scales the routers alone, by the ratio of the bounds', () => {
    const router = { ...init.linear, bound_times_sqrt_fan_in: init.linear.bound_times_sqrt_fan_in! * 16 };
    const sharp = makeTensors(spec, vocab, { ...init, router });
    const routers = base.filter((t) => t.name.endsWith('mlp.gate.weight')).map((t) => t.name);
    expect(routers.length).toBeGreaterThan(0);
    for (const [i, t] of sharp.entries()) {
      const b = base[i];
      expect(t.name).toBe(b.name);
      if (!routers.includes(t.name)) {
        expect(Buffer.from(t.bf16.buffer).equals(Buffer.from(b.bf16.buffer))).toBe(true);
        continue;
      }
      let nonzero = 0;
      for (let j = 0; j < t.bf16.length; j++) {
        expect(bf16ToF32(t.bf16[j])).toBe(16 * bf16ToF32(b.bf16[j]));
        if (b.bf16[j] !== 0) nonzero++;
      }
      expect(nonzero).toBeGreaterThan(t.bf16.length / 2);
    }
  });
});
