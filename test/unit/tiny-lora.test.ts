import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensorsHeader } from '../../src/model/safetensors.js';
import { tensorValues } from '../../src/model/tiny-checkpoint.js';
import { loraModules, loraTensors } from '../../src/model/tiny-lora.js';
import { specFile } from '../helpers/fixtures.js';
import { LORA_NAMES, loraRefs, loraSpecFile, writeLoraAdapter } from '../helpers/lora-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'grpst-tiny-lora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const refs = loraRefs();
const specs = loraSpecFile().adapters;
const base = specFile().checkpoints['tiny-b'];

describe('tiny LoRA adapters (PEFT folders)', () => {
  it.each(LORA_NAMES)('%s: rewrites the tensors the peft references were recorded on', (name) => {
    const digest = writeLoraAdapter(name, join(tmp, name));
    expect(digest).toBe(refs.adapters.find((a) => a.name === name)!.weights_sha256);
  });

  it.each(LORA_NAMES)('%s: writes the keys, shapes and ranks peft loaded', (name) => {
    const dir = join(tmp, `${name}-keys`);
    writeLoraAdapter(name, dir);
    const { tensors } = readSafetensorsHeader(join(dir, 'adapter_model.safetensors'));
    const peftLayers = refs.adapters.find((a) => a.name === name)!.peft_layers;
    const modules = loraModules(specs[name], base);
    // The spec's rank_pattern / alpha_pattern / rsLoRA resolved here as peft resolved them.
    expect(modules.map((m) => m.module).sort()).toEqual(Object.keys(peftLayers).sort());
    for (const m of modules) {
      expect(m.r, m.module).toBe(peftLayers[m.module].r);
      expect(m.scaling, m.module).toBeCloseTo(peftLayers[m.module].scaling, 12);
    }
    const shapes = Object.fromEntries(tensors.map((t) => [t.name, t.shape]));
    expect(tensors.every((t) => t.dtype === 'BF16')).toBe(true);
    expect(Object.keys(shapes)).toHaveLength(2 * modules.length);
    for (const m of modules) {
      expect(shapes[`base_model.model.${m.module}.lora_A.weight`]).toEqual([m.r, m.inFeatures]);
      expect(shapes[`base_model.model.${m.module}.lora_B.weight`]).toEqual([m.outFeatures, m.r]);
    }
    const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: specs[name].r, lora_alpha: specs[name].lora_alpha,
      target_modules: specs[name].target_modules, use_rslora: specs[name].use_rslora, use_dora: false, bias: 'none',
      fan_in_fan_out: false, lora_dropout: 0, modules_to_save: null, base_model_name_or_path: 'tiny-b', inference_mode: true,
      rank_pattern: specs[name].rank_pattern, alpha_pattern: specs[name].alpha_pattern,
    });
  });

  it('applies rank_pattern to down_proj only (qv: q and v rank 4, down_proj rank 2 with its own alpha)', () => {
    const dir = join(tmp, 'qv-shapes');
    writeLoraAdapter('tiny-b-lora-qv', dir);
    const shapes = Object.fromEntries(readSafetensorsHeader(join(dir, 'adapter_model.safetensors')).tensors.map((t) => [t.name, t.shape]));
    expect(Object.keys(shapes)).toHaveLength(3 * 3 * 2);
    for (let i = 0; i < 3; i++) {
      const p = `base_model.model.model.layers.${i}.`;
      expect(shapes[`${p}self_attn.q_proj.lora_A.weight`]).toEqual([4, 96]);
      expect(shapes[`${p}self_attn.q_proj.lora_B.weight`]).toEqual([144, 4]);
      expect(shapes[`${p}self_attn.v_proj.lora_A.weight`]).toEqual([4, 96]);
      expect(shapes[`${p}self_attn.v_proj.lora_B.weight`]).toEqual([48, 4]);
      expect(shapes[`${p}mlp.down_proj.lora_A.weight`]).toEqual([2, 192]);
      expect(shapes[`${p}mlp.down_proj.lora_B.weight`]).toEqual([96, 2]);
    }
    const down = loraModules(specs['tiny-b-lora-qv'], base).find((m) => m.module === 'model.layers.1.mlp.down_proj')!;
    expect(down.scaling).toBeCloseTo(6 / Math.sqrt(2), 12); // rsLoRA: alpha_pattern's 6 over sqrt(rank_pattern's 2)
  });

  it('regenerates the same bytes every time, from (seed, PEFT key) alone', () => {
    const a = join(tmp, 'again-a'), b = join(tmp, 'again-b');
    writeLoraAdapter('tiny-b-lora-all', a);
    writeLoraAdapter('tiny-b-lora-all', b);
    for (const f of ['adapter_model.safetensors', 'adapter_config.json']) {
      expect(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), f).toBe(true);
    }
    const spec = specs['tiny-b-lora-all'];
    const t = loraTensors(spec, base).find((x) => x.name === 'base_model.model.model.layers.2.mlp.down_proj.lora_A.weight')!;
    const bound = spec.init.lora_A.bound_times_sqrt_fan_in! / Math.sqrt(192);
    const again = tensorValues(spec.seed, t.name, 8 * 192, bound, 0);
    expect(Buffer.from(again.buffer).equals(Buffer.from(t.bf16.buffer))).toBe(true);
    // The file holds those very values, and another seed gives others.
    const info = readSafetensorsHeader(join(a, 'adapter_model.safetensors')).tensors.find((x) => x.name === t.name)!;
    expect(readFileSync(info.file).subarray(info.offset, info.offset + info.nbytes).equals(Buffer.from(again.buffer))).toBe(true);
    expect(Buffer.from(tensorValues(spec.seed + 1, t.name, 8 * 192, bound, 0).buffer).equals(Buffer.from(again.buffer))).toBe(false);
  });
});
