// Whether a folder here holds the model an archive packed (src/daemon/same-model.ts): what decides
// if a conf here and the archive's conf that --include_engine rewrote are the same conf.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdsPackedModel } from '../../src/daemon/same-model.js';
import { checkpoint } from '../helpers/fixtures.js';

let tmp: string;
let source: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-same-model-'));
  source = checkpoint('tiny-a');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of the checkpoint, as an archive packs it, with `edit` applied. */
function copy(name: string, edit: (dir: string) => void = () => undefined): string {
  const dir = path.join(tmp, name);
  fs.cpSync(source, dir, { recursive: true });
  edit(dir);
  return dir;
}

describe('holdsPackedModel', () => {
  it('the folder a copy was packed from holds it; so does a tokenizer.json path of that folder', () => {
    const packed = copy('packed');
    expect(holdsPackedModel(source, packed)).toBe(true);
    expect(holdsPackedModel(path.join(source, 'tokenizer.json'), packed)).toBe(true);
  });

  it('a tokenizer packed without the weights beside it is held by the folder it came from', () => {
    const packed = copy('tokenizer-only', (dir) => fs.rmSync(path.join(dir, 'model.safetensors')));
    expect(holdsPackedModel(source, packed)).toBe(true);
  });

  it('other weights of the same sizes and config (a fine-tune) are another model', () => {
    const tuned = copy('tuned', (dir) => {
      const file = path.join(dir, 'model.safetensors');
      const bytes = fs.readFileSync(file);
      const header = 8 + Number(bytes.readBigUInt64LE(0));
      for (let i = header; i < bytes.length; i++) bytes[i] ^= 0x01;
      fs.writeFileSync(file, bytes);
    });
    expect(holdsPackedModel(tuned, copy('packed-2'))).toBe(false);
  });

  it('another checkpoint, a missing folder and an engine of another build are other models', () => {
    expect(holdsPackedModel(checkpoint('tiny-b'), copy('packed-3'))).toBe(false);
    expect(holdsPackedModel(path.join(tmp, 'nowhere'), copy('packed-4'))).toBe(false);
    const engine = (name: string, sha: string) => {
      const dir = path.join(tmp, name);
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'engine.json'), JSON.stringify({ format: 'grpst-engine', files: { 'rank0.weights': { bytes: 4, sha256: sha } } }));
      fs.writeFileSync(path.join(dir, 'rank0.weights'), 'abcd');
      return dir;
    };
    expect(holdsPackedModel(engine('e1', 'a'.repeat(64)), engine('e1-packed', 'a'.repeat(64)))).toBe(true);
    expect(holdsPackedModel(engine('e2', 'b'.repeat(64)), engine('e2-packed', 'a'.repeat(64)))).toBe(false);
  });
});
