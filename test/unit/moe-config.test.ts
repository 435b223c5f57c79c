// Qwen3-MoE configs: which layers are sparse (mlp_only_layers, decoder_sparse_step), transformers
// 5's renamed num_local_experts, the refusals, and the parameter count Ollama's listings show,
// checked against the tiny MoE checkpoints' actual tensors.
import { describe, expect, it } from 'vitest';
import { parseHfConfig } from '../../src/model/config.js';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { ggufArchitecture, parameterCount } from '../../src/server/ollama/model-facts.js';
import { checkpoint, type CheckpointName } from '../helpers/fixtures.js';

const base = {
  model_type: 'qwen3_moe',
  architectures: ['Qwen3MoeForCausalLM'],
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 6,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  vocab_size: 1000,
  num_experts: 8,
  num_experts_per_tok: 2,
  moe_intermediate_size: 32,
};

describe('qwen3_moe config.json', () => {
  it('marks the sparse layers as transformers does (mlp_only_layers, decoder_sparse_step)', () => {
    expect(parseHfConfig(base).model.moe!.sparseLayers).toEqual([true, true, true, true, true, true]);
    expect(parseHfConfig({ ...base, decoder_sparse_step: 2 }).model.moe!.sparseLayers).toEqual([false, true, false, true, false, true]);
    expect(parseHfConfig({ ...base, mlp_only_layers: [0, 3] }).model.moe!.sparseLayers).toEqual([false, true, true, false, true, true]);
  });

  it("reads transformers 5's num_local_experts, and norm_topk_prob (false when absent, as transformers)", () => {
    const { num_experts: _, ...renamed } = base;
    const moe = parseHfConfig({ ...renamed, num_local_experts: 8, norm_topk_prob: true }).model.moe!;
    expect(moe).toMatchObject({ numExperts: 8, numExpertsPerTok: 2, intermediateSize: 32, normTopkProb: true });
    expect(parseHfConfig(base).model.moe!.normTopkProb).toBe(false);
    expect(parseHfConfig({ ...base, model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'] }).model.moe).toBeUndefined();
  });

  it('refuses a config that cannot route: missing sizes, more experts per token than experts', () => {
    const { moe_intermediate_size: _, ...noSize } = base;
    expect(() => parseHfConfig(noSize)).toThrow(/moe_intermediate_size is missing/);
    expect(() => parseHfConfig({ ...base, num_experts_per_tok: 9 })).toThrow(/num_experts_per_tok 9 is more than num_experts 8/);
    expect(() => parseHfConfig({ ...base, model_type: 'llama', architectures: ['LlamaForCausalLM'] })).toThrow(/not qwen3 or qwen3_moe/);
  });
});

describe('the parameter count of a listing', () => {
  it.each(['tiny-a', 'tiny-b', 'tiny-moe', 'tiny-moe-b'] as CheckpointName[])('%s: equals the elements of its tensors', (name) => {
    const ck = openCheckpoint(checkpoint(name));
    let elements = 0;
    for (const t of ck.tensors.values()) elements += t.shape.reduce((a, b) => a * b, 1);
    expect(parameterCount(ck.model)).toBe(elements);
    expect(ggufArchitecture(ck.model)).toBe(name.includes('moe') ? 'qwen3moe' : 'qwen3');
  });
});
