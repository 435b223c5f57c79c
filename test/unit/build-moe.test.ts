// The pieces of a Qwen3-MoE build that need no runtime: the tensor names of sparse layers, how a
// build describes the experts, which settings it refuses (and that a dense checkpoint is never
// refused by them), where calibration runs, and the expert flags TensorRT-LLM's converter gets.
import { describe, expect, it } from 'vitest';
import { checkBuildInputs } from '../../src/build/checks.js';
import { checkMoeBuild } from '../../src/build/moe-checks.js';
import { planNativeBuild } from '../../src/build/native/plan.js';
import { openSource } from '../../src/build/native/source.js';
import { resolveSettings, type BuildSettingsInput } from '../../src/build/options.js';
import { trtllmSteps } from '../../src/build/trtllm/commands.js';
import { parseHfConfig } from '../../src/model/config.js';
import { describeExperts, expertModules, expertShape, isSparseLayer, routerModule, sparseLayerIndices } from '../../src/model/moe-tensors.js';
import { checkpoint } from '../helpers/fixtures.js';

const moeConfig = parseHfConfig({
  model_type: 'qwen3_moe',
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  vocab_size: 1000,
  num_experts: 3,
  num_experts_per_tok: 2,
  moe_intermediate_size: 32,
  decoder_sparse_step: 2,
}).model;

describe('the tensors of a sparse layer', () => {
  it('names the router and each expert projection as the Hugging Face Hub does, with their [out, in]', () => {
    expect(sparseLayerIndices(moeConfig)).toEqual([1, 3]);
    expect([0, 1].map((i) => isSparseLayer(moeConfig, i))).toEqual([false, true]);
    expect(routerModule(3)).toBe('model.layers.3.mlp.gate');
    expect(expertModules(moeConfig, 1).map((e) => e.module)).toEqual(
      [0, 1, 2].flatMap((e) => ['gate_proj', 'up_proj', 'down_proj'].map((p) => `model.layers.1.mlp.experts.${e}.${p}`)),
    );
    expect(expertShape(moeConfig, 'up_proj')).toEqual([32, 64]);
    expect(expertShape(moeConfig, 'down_proj')).toEqual([64, 32]);
  });

  it('describes the experts in words; a dense model has none', () => {
    expect(describeExperts(moeConfig)).toBe('Qwen3-MoE, 3 experts (top 2) of size 32 in 2 of 4 layers');
    expect(describeExperts({ ...moeConfig, moe: { ...moeConfig.moe!, sparseLayers: [true, true, true, true] } })).toMatch(/in every layer$/);
    const { moe: _, ...dense } = moeConfig;
    expect(describeExperts(dense)).toBeUndefined();
    expect(sparseLayerIndices(dense)).toEqual([]);
    expect(isSparseLayer(dense, 1)).toBe(false);
  });
});

function settings(flags: BuildSettingsInput, model = 'tiny-moe' as const) {
  return resolveSettings({}, { model_dir: checkpoint(model), output_dir: '/nonexistent/engine', ...flags });
}

describe('checkMoeBuild', () => {
  const src = () => openSource(checkpoint('tiny-moe'));

  it('lets every format through (the calibrated ones from per-expert statistics), with a quantized KV cache, on any device', () => {
    for (const qformat of ['full_prec', 'int8_wo', 'int4_awq', 'fp8', 'int8_sq'] as const)
      for (const device of ['auto', 'cpu', 'cuda'] as const) expect(() => checkMoeBuild(settings({ qformat, device, kv_cache_dtype: 'int8' }), src())).not.toThrow();
  });

  it.each([
    [{ tp_size: 2 }, /--tp_size 2: tensor parallelism is not available for Qwen3-MoE engines yet/],
  ] as [BuildSettingsInput, RegExp][])('refuses %j', (flags, message) => {
    expect(() => checkMoeBuild(settings(flags), src())).toThrow(message);
  });

  it('refuses nothing of a dense checkpoint', () => {
    const dense = openSource(checkpoint('tiny-a'));
    for (const flags of [{ qformat: 'fp8' }, { tp_size: 2 }, { device: 'cuda' }] as BuildSettingsInput[]) {
      expect(() => checkMoeBuild(resolveSettings({}, { model_dir: checkpoint('tiny-a'), output_dir: '/nonexistent/e', ...flags }), dense)).not.toThrow();
    }
  });
});

describe('the plan of a MoE build', () => {
  it('calibrates only a quantized KV cache, and says what becomes of the experts and routers', () => {
    const s = settings({ qformat: 'int8_wo', kv_cache_dtype: 'fp8', device: 'cpu' });
    const plan = planNativeBuild(s, openSource(s.model_dir));
    expect(plan.steps.map((st) => st.phase)).toEqual(['check', 'calibrate', 'quantize', 'write', 'verify']);
    expect(plan.steps[0].text).toContain('(unquantized; Qwen3-MoE, 8 experts (top 2) of size 48 in 2 of 3 layers)');
    expect(plan.steps[1].text).toMatch(/the fp8 KV cache, running the checkpoint, on the CPU$/);
    expect(plan.steps[2].text).toContain("8 experts in each of 2 sparse layers: the experts' projections in int8_wo, the routers unquantized in bfloat16");
    const bf16 = planNativeBuild(settings({}), openSource(s.model_dir));
    expect(bf16.steps[1].text).toContain("the experts' projections in bfloat16");
  });

  it('calibrates the weights of int4_awq, fp8 and int8_sq, each expert on the tokens routed to it', () => {
    for (const [qformat, weights] of [['int4_awq', 'int4_awq, block 16'], ['fp8', 'fp8'], ['int8_sq', 'int8_sq']] as const) {
      const s = settings({ qformat, awq_block_size: 16 });
      const plan = planNativeBuild(s, openSource(s.model_dir));
      expect(plan.steps.map((st) => st.phase)).toEqual(['check', 'calibrate', 'quantize', 'write', 'verify']);
      // (device auto: where the runtime finds a GPU, the CUDA forward calibrates the experts too)
      expect(plan.steps[1].text).toMatch(new RegExp(`: ${qformat} weights, running the checkpoint$`));
      expect(plan.steps[2].text).toContain(`the experts' projections in ${weights}, each expert calibrated on the tokens routed to it, the routers unquantized in bfloat16`);
    }
  });

  it("refuses an --awq_block_size that does not divide the experts' moe_intermediate_size (48)", () => {
    const s = settings({ qformat: 'int4_awq', awq_block_size: 32 });
    expect(() => checkBuildInputs(s, openSource(s.model_dir))).toThrow(/awq_block_size 32 does not divide the input dimension 48 of the experts' down_proj \(moe_intermediate_size\)/);
  });
});

describe("TensorRT-LLM's commands for a MoE checkpoint", () => {
  const tools = { python: 'python3', convertScript: 'convert_checkpoint.py', quantizeScript: 'quantize.py', trtllmBuild: 'trtllm-build', trtllmDir: '/t' };
  const dirs = { checkpoint: '/c', engine: '/e', calib: '/k' };

  it('spell out the experts cut across the ranks for convert_checkpoint.py only, and only when there are ranks', () => {
    const convert = (tp: number, moe: boolean) => trtllmSteps(settings({ tp_size: tp, backend: 'trtllm' }), tools, dirs, false, moe)[0].argv;
    expect(convert(2, true).slice(-6)).toEqual(['--tp_size', '2', '--moe_tp_size', '2', '--moe_ep_size', '1']);
    expect(convert(1, true).some((a) => a.startsWith('--moe'))).toBe(false);
    expect(convert(2, false).some((a) => a.startsWith('--moe'))).toBe(false);
    const quantize = trtllmSteps(settings({ tp_size: 2, backend: 'trtllm', qformat: 'int8_wo' }), tools, dirs, false, true)[0];
    expect(quantize.name).toBe('quantize');
    expect(quantize.argv.some((a) => a.startsWith('--moe'))).toBe(false);
  });
});
