// What a native build needs from the runtime: calibration statistics of the unquantized model,
// and full next-token distributions of a model (checkpoint or engine folder) for the accuracy
// report. Implemented over the addon in src/engine; builds ask for it only when they need it.
import type { AwqLossFn, AwqObjective } from '../../quant/awq.js';
import type { QuantKernels } from '../../quant/kernels.js';
import type { ModelCalibration } from '../../quant/layer.js';

export interface CalibrationRequest {
  /** Token sequences, each run as its own prompt. */
  sequences: Int32Array[];
  /** Token rows kept per layer input for AWQ's search (a deterministic, evenly spread sample). */
  sampleRows: number;
  onProgress?: (fraction: number) => void;
  /** Checked between batches: an interrupted build stops within one batch. */
  signal?: AbortSignal;
  /** Where the model runs (BuildSettings.device); default auto. */
  device?: RunDevice;
}

/** auto: the GPU where the runtime has the CUDA backend and one is visible, else the CPU. */
export type RunDevice = 'auto' | 'cpu' | 'cuda';

export interface Scorer {
  readonly vocabSize: number;
  /** Where it runs, in words ("CPU (avx2)", "NVIDIA H200 (sm_90, cuda)"). */
  readonly ranOn?: string;
  /**
   * Log-softmax of the logits after each position of `tokens`, in chunks of rows:
   * onRows(firstPosition, rows [count, vocab], count).
   */
  logprobs(tokens: Int32Array, onRows: (first: number, rows: Float32Array, count: number) => void): Promise<void>;
  close(): Promise<void>;
}

export interface RuntimeBridge {
  /** Per decoder layer: statistics of the four linear inputs and of the cached k / v; and of lm_head's input. */
  calibrate(modelDir: string, req: CalibrationRequest): Promise<ModelCalibration & { ranOn?: string }>;
  /** A checkpoint folder or an engine folder, loaded for scoring on `device` (default auto). */
  openScorer(dir: string, device?: RunDevice): Promise<Scorer>;
  /** AWQ's search objective in native code (see src/quant/awq.ts awqLoss for the definition). */
  awqLoss: AwqLossFn;
  /** src/quant/kernels.ts's passes in native code, on every core: the same bytes. */
  quantKernels?: QuantKernels;
  /** The same objective as a search opens it, where `device` runs it (the GPU for cuda, and for auto where one is usable). */
  awqObjectiveFor?(device: RunDevice): { objective: AwqObjective; ranOn: string };
}
