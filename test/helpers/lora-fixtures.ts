// The LoRA adapter fixtures: tiny-b's PEFT adapters of test/fixtures/lora-adapters.json, rebuilt
// bit for bit by src/model/tiny-lora.ts, and the transformers + peft references that
// scripts/make_lora_fixture.py recorded on them (test/fixtures/refs-tiny-b-lora.json).
//
//   npx tsx test/helpers/lora-fixtures.ts OUT_DIR   writes OUT_DIR/<name> for each adapter, for that script
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeTinyLoraAdapter, type TinyLoraSpec } from '../../src/model/tiny-lora.js';
import { cacheDir, fixturesDir, readJson, specFile, type CheckpointName, type PromptRef } from './fixtures.js';

export type LoraName = 'tiny-b-lora-all' | 'tiny-b-lora-qv';
export const LORA_NAMES: LoraName[] = ['tiny-b-lora-all', 'tiny-b-lora-qv'];

export interface LoraSpecFile {
  adapters: Record<LoraName, TinyLoraSpec & { base: CheckpointName }>;
}

export interface LoraRefs {
  checkpoint: CheckpointName;
  /** weights_sha256 of the base checkpoint (the same as refs-<checkpoint>.json's). */
  base_weights_sha256: string;
  dtype: string;
  device: string;
  env: Record<string, string>;
  adapters: {
    name: LoraName;
    /** weightsDigest of the adapter's lora_A / lora_B tensors. */
    weights_sha256: string;
    /** First greedy step where the adapter's token differs from the base model's, per prompt. */
    greedy_diverges_at: Record<string, number>;
    /** The base model with the adapter applied unmerged (peft's LoRA forward), in fp32 on a CPU. */
    prompts: PromptRef[];
    /** Rank and scaling peft gave each adapted module (rank_pattern, alpha_pattern and rsLoRA resolved). */
    peft_layers: Record<string, { r: number; scaling: number }>;
  }[];
}

export function loraSpecFile(): LoraSpecFile {
  return readJson<LoraSpecFile>(join(fixturesDir, 'lora-adapters.json'));
}

export function loraRefs(): LoraRefs {
  return readJson<LoraRefs>(join(fixturesDir, 'refs-tiny-b-lora.json'));
}

/** Writes the adapter folder at `outDir`; returns its digest. */
export function writeLoraAdapter(name: LoraName, outDir: string): string {
  const spec = loraSpecFile().adapters[name];
  return writeTinyLoraAdapter(outDir, spec, specFile().checkpoints[spec.base]);
}

/** Path of the adapter folder, written on first use; throws if its tensors differ from the references'. */
export function loraAdapter(name: LoraName): string {
  const dir = join(cacheDir, name);
  const stamp = join(dir, 'weights.sha256');
  const expected = loraRefs().adapters.find((a) => a.name === name)?.weights_sha256;
  if (!expected) throw new Error(`${name}: no references in refs-tiny-b-lora.json`);
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === expected) return dir;
  const digest = writeLoraAdapter(name, dir);
  if (digest !== expected) throw new Error(`${name}: regenerated adapter digest ${digest} != reference ${expected}`);
  writeFileSync(stamp, digest);
  return dir;
}

// (run as a script: not when bundled into another, whose own URL is then the one started)
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href && /lora-fixtures\.[jt]s$/.test(import.meta.url)) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: npx tsx test/helpers/lora-fixtures.ts OUT_DIR');
    process.exit(2);
  }
  for (const name of LORA_NAMES) console.log(name, writeLoraAdapter(name, join(resolve(out), name)));
}
