// Tensor names of a Qwen3-MoE checkpoint's sparse layers, as the Hugging Face Hub stores them:
// layer i's router is model.layers.i.mlp.gate.weight [num_experts, hidden], and expert e's SwiGLU is
// model.layers.i.mlp.experts.e.{gate_proj,up_proj,down_proj}.weight. Dense layers (mlp_only_layers,
// or off decoder_sparse_step) keep Qwen3's mlp.{gate_proj,up_proj,down_proj}. An engine keeps the
// same names: each expert projection is a linear in the engine's format, the router stays float.
import type { ModelConfig } from './config.js';

/** The three projections of every expert, in the order a layer's tensors are written. */
export const expertProjections = ['gate_proj', 'up_proj', 'down_proj'] as const;
export type ExpertProjection = (typeof expertProjections)[number];

/** Whether layer i's MLP is the experts (false for every layer of a dense model). */
export function isSparseLayer(model: ModelConfig, layer: number): boolean {
  return model.moe?.sparseLayers[layer] ?? false;
}

/** The router's module name (its tensor is this + ".weight"). */
export function routerModule(layer: number): string {
  return `model.layers.${layer}.mlp.gate`;
}

/** An expert projection's module name: the prefix its tensors are named by (".weight", ".qweight", ...). */
export function expertModule(layer: number, expert: number, projection: ExpertProjection): string {
  return `model.layers.${layer}.mlp.experts.${expert}.${projection}`;
}

/** Every expert projection of a sparse layer, expert by expert. */
export function expertModules(model: ModelConfig, layer: number): { module: string; projection: ExpertProjection }[] {
  const out: { module: string; projection: ExpertProjection }[] = [];
  for (let e = 0; e < (model.moe?.numExperts ?? 0); e++) for (const projection of expertProjections) out.push({ module: expertModule(layer, e, projection), projection });
  return out;
}

/** [out, in] of an expert projection, as Hugging Face stores the weight. */
export function expertShape(model: ModelConfig, projection: ExpertProjection): [number, number] {
  const I = model.moe!.intermediateSize;
  const H = model.hiddenSize;
  return projection === 'down_proj' ? [H, I] : [I, H];
}

/** Indices of the sparse layers. */
export function sparseLayerIndices(model: ModelConfig): number[] {
  return (model.moe?.sparseLayers ?? []).flatMap((sparse, i) => (sparse ? [i] : []));
}

/** "8 experts (top 2) in 2 of 3 layers": how a build describes a MoE model; undefined for a dense one. */
export function describeExperts(model: ModelConfig): string | undefined {
  const moe = model.moe;
  if (!moe) return undefined;
  const sparse = sparseLayerIndices(model).length;
  const where = sparse === model.numLayers ? 'every layer' : `${sparse} of ${model.numLayers} layers`;
  return `Qwen3-MoE, ${moe.numExperts} experts (top ${moe.numExpertsPerTok}) of size ${moe.intermediateSize} in ${where}`;
}
