// Writes the tiny-checkpoint references of test/fixtures as plain text for the CUDA harness
// (test/gpu/kernels/model_parity.cu), which regenerates the weights itself:
//   npx tsx scripts/gpu/export-fixtures.ts OUT_DIR
// One file per checkpoint: dims, rope table (as src/model/config.ts computes it), init rules,
// and per prompt the ids, prompt logprobs, greedy ids and their top-2 margins.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHfConfig } from '../../src/model/config.js';
import { configJson } from '../../src/model/tiny-checkpoint.js';
import { refs, specFile, type CheckpointName } from '../../test/helpers/fixtures.js';

const out = process.argv[2];
if (!out) {
  console.error('usage: tsx scripts/gpu/export-fixtures.ts OUT_DIR');
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const spec = specFile();
for (const name of ['tiny-a', 'tiny-b', 'tiny-yarn'] as CheckpointName[]) {
  const s = spec.checkpoints[name];
  const { model } = parseHfConfig(configJson(s, spec.vocab_size));
  const lines: string[] = [
    `checkpoint ${name}`,
    `seed ${s.seed}`,
    `dims ${s.hidden_size} ${s.intermediate_size} ${s.num_hidden_layers} ${s.num_attention_heads} ${s.num_key_value_heads} ${s.head_dim} ${spec.vocab_size}`,
    `eps ${s.rms_norm_eps}`,
    `tie ${s.tie_word_embeddings ? 1 : 0}`,
    `attention_scaling ${model.ropeAttentionScaling}`,
    `inv_freq ${model.ropeInvFreq.length} ${model.ropeInvFreq.join(' ')}`,
  ];
  for (const [kind, rule] of Object.entries(spec.init)) {
    const r = rule as { bound?: number; bound_times_sqrt_fan_in?: number; offset: number };
    lines.push(`init ${kind} ${r.bound_times_sqrt_fan_in ?? r.bound} ${r.offset}`);
  }
  for (const p of refs(name).prompts) {
    lines.push(`prompt ${p.name}`);
    lines.push(`ids ${p.prompt_ids.length} ${p.prompt_ids.join(' ')}`);
    lines.push(`logprobs ${p.prompt_logprobs.length} ${p.prompt_logprobs.join(' ')}`);
    lines.push(`greedy ${p.greedy.ids.length} ${p.greedy.ids.join(' ')}`);
    lines.push(`margins ${p.greedy.margins.length} ${p.greedy.margins.join(' ')}`);
  }
  writeFileSync(join(out, `${name}.txt`), lines.join('\n') + '\n');
}
console.log(`fixtures written to ${out}`);
