// Prometheus text exposition (format 0.0.4) for the few metric kinds the server needs: counters
// with labels, histograms, and gauges read at scrape time (engine stats, queue lengths).
import type { EngineStats } from '../engine/types.js';
import { vllmSeries } from './metrics-vllm.js';
import { labelText, type Labels } from './prometheus-labels.js';

export class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    /** Counted by label: no series until the first sample (an unlabelled 0 would be a series of its own). */
    private readonly labelled = false,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const entry = this.values.get(key);
    if (entry) entry.value += by;
    else this.values.set(key, { labels, value: by });
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels))?.value ?? 0;
  }
  /** Each series' labels and count, in the order they first appeared. */
  series(): { labels: Labels; value: number }[] {
    return [...this.values.values()];
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0 && !this.labelled) lines.push(`${this.name} 0`);
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${value}`);
    return lines.join('\n');
  }
}

export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: number[],
  ) {
    this.counts = new Array(buckets.length).fill(0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) this.counts[i]++;
  }
  /** The histogram, or the same samples under another name and help with constant labels (vLLM's names, metrics-vllm.ts). */
  render(name = this.name, help = this.help, labels: Labels = {}): string {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    const bucketLabels = (extra: Labels) => labelText({ ...labels, ...extra });
    this.buckets.forEach((b, i) => lines.push(`${name}_bucket${bucketLabels({ le: String(b) })} ${this.counts[i]}`));
    lines.push(`${name}_bucket${bucketLabels({ le: '+Inf' })} ${this.count}`, `${name}_sum${labelText(labels)} ${this.sum}`, `${name}_count${labelText(labels)} ${this.count}`);
    return lines.join('\n');
  }
}

const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60];
const e2eBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600];

/** What the scrape reads live rather than counting as it happens. */
export interface LiveState {
  /** The served model's id (options.modelId), for grpst_model_info. */
  modelName: string;
  ready: boolean;
  running: number;
  waiting: number;
  engine?: EngineStats;
  /** Where LoRA adapters are served: the most one step can mix, and the names with requests in flight. */
  lora?: { maxLora: number; waiting: string[]; running: string[] };
}

export class ServerMetrics {
  readonly requests = new Counter('grpst_requests_total', 'HTTP requests answered, by route and status code.', true);
  readonly finished = new Counter('grpst_request_finished_total', 'Generations finished, by finish reason (stop, length, tool_calls, cancelled, error).', true);
  readonly connectionsRefused = new Counter('grpst_connections_over_limit_total', 'Connections past max_connections: answered 503 and closed.');
  readonly promptTokens = new Counter('grpst_prompt_tokens_total', 'Prompt tokens of admitted generations.');
  readonly generationTokens = new Counter('grpst_generation_tokens_total', 'Tokens generated.');
  readonly ttft = new Histogram('grpst_time_to_first_token_seconds', 'From request arrival to its first generated token.', latencyBuckets);
  readonly itl = new Histogram('grpst_inter_token_latency_seconds', 'Between consecutive token batches of one generation.', latencyBuckets);
  readonly e2e = new Histogram('grpst_e2e_request_latency_seconds', 'From request arrival to its last token.', e2eBuckets);
  readonly queueTime = new Histogram('grpst_queue_time_seconds', 'Time a request waited for admission.', latencyBuckets);

  render(live: LiveState): string {
    const gauge = (name: string, help: string, value: number) => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}`;
    const counter = (name: string, help: string, value: number) => `# HELP ${name} ${help}\n# TYPE ${name} counter\n${name} ${value}`;
    const parts = [
      // The model's name as an info series rather than a label on every series: a server serves
      // one model, and a constant label would change every series' identity (docs/metrics.md).
      `# HELP grpst_model_info The served model; join on it for per-model views.\n# TYPE grpst_model_info gauge\ngrpst_model_info${labelText({ model_name: live.modelName })} 1`,
      gauge('grpst_model_ready', '1 once the engine is loaded and serving.', live.ready ? 1 : 0),
      gauge('grpst_requests_running', 'Requests admitted and generating.', live.running),
      gauge('grpst_requests_waiting', 'Requests queued for admission (the 429 limit counts these).', live.waiting),
      this.requests.render(),
      this.finished.render(),
      this.connectionsRefused.render(),
      this.promptTokens.render(),
      this.generationTokens.render(),
      this.ttft.render(),
      this.itl.render(),
      this.e2e.render(),
      this.queueTime.render(),
    ];
    const s = live.engine;
    if (s) {
      parts.push(
        gauge('grpst_engine_sequences_running', 'Sequences in the running batch.', s.running),
        gauge('grpst_engine_sequences_waiting', 'Sequences waiting for KV blocks or a batch slot.', s.waiting),
        gauge('grpst_kv_blocks_used', 'Paged KV cache blocks in use.', s.kvBlocksUsed),
        gauge('grpst_kv_blocks_total', 'Paged KV cache blocks in the pool.', s.kvBlocksTotal),
        gauge('grpst_kv_block_size_tokens', 'Tokens per KV block.', s.kvBlockSize),
        gauge('grpst_kv_cache_usage_ratio', 'Fraction of KV blocks in use.', s.kvBlocksTotal > 0 ? s.kvBlocksUsed / s.kvBlocksTotal : 0),
        counter('grpst_prefix_cache_hit_tokens_total', 'Prompt tokens served from the prefix cache.', s.prefixCacheHitTokens),
        counter('grpst_prefix_cache_query_tokens_total', 'Prompt tokens looked up in the prefix cache.', s.prefixCacheQueryTokens),
        counter('grpst_engine_prompt_tokens_total', 'Prompt tokens the engine processed.', s.promptTokensTotal),
        counter('grpst_engine_generated_tokens_total', 'Tokens the engine generated.', s.generatedTokensTotal),
        counter('grpst_engine_steps_total', 'Forward steps of the engine loop.', s.steps),
        counter('grpst_engine_step_seconds_total', 'Wall time of the engine loop\'s steps: input taken to events handed on.', s.stepSeconds),
        counter('grpst_engine_forward_seconds_total', 'The part of the steps\' wall time inside the model runners (a draft model\'s too); the rest is host work between forward passes.', s.forwardSeconds),
      );
      if (s.specDecode)
        parts.push(
          counter('grpst_spec_decode_drafts_total', 'Decode steps of a sequence that carried draft tokens.', s.specDecode.drafts),
          counter('grpst_spec_decode_draft_tokens_total', 'Draft tokens checked.', s.specDecode.draftTokens),
          counter('grpst_spec_decode_accepted_tokens_total', 'Draft tokens the model agreed with.', s.specDecode.acceptedTokens),
        );
    }
    parts.push(...vllmSeries(this, live));
    return parts.join('\n') + '\n';
  }
}
