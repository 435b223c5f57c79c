// The same counts under vLLM's metric names and labels (`vllm:num_requests_running{model_name,
// engine}`, ...), so dashboards, alerts and autoscalers written for a vLLM server (its Grafana
// dashboard, KEDA or a router reading queue lengths) read this one unchanged. Only series whose
// meaning is the same here are given; docs/metrics.md lists them.
import type { LiveState, ServerMetrics } from './metrics.js';
import { labelText, type Labels } from './prometheus-labels.js';

/** vLLM's finish reasons: a tool call is a stop there, a cancelled request an abort. */
const finishReasons: Record<string, string> = { stop: 'stop', tool_calls: 'stop', length: 'length', cancelled: 'abort', error: 'error' };

export function vllmSeries(m: ServerMetrics, live: LiveState): string[] {
  // vLLM labels every series with the served model and the engine index (one engine here).
  const base: Labels = { model_name: live.modelName, engine: '0' };
  const one = (type: 'gauge' | 'counter', name: string, help: string, value: number) =>
    `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name}${labelText(base)} ${value}`;
  const s = live.engine;
  const out = [
    // The engine's own batch once loaded; before that, the server's admitted and queued requests.
    one('gauge', 'vllm:num_requests_running', 'Requests in the running batch.', s ? s.running : live.running),
    one('gauge', 'vllm:num_requests_waiting', 'Requests waiting to be scheduled.', s ? s.waiting + live.waiting : live.waiting),
    one('gauge', 'vllm:kv_cache_usage_perc', 'KV cache usage (1 = full).', s && s.kvBlocksTotal > 0 ? s.kvBlocksUsed / s.kvBlocksTotal : 0),
    one('counter', 'vllm:prompt_tokens_total', 'Prompt tokens processed.', m.promptTokens.get()),
    one('counter', 'vllm:generation_tokens_total', 'Generation tokens processed.', m.generationTokens.get()),
    one('counter', 'vllm:prefix_cache_queries_total', 'Prefix cache queries, in tokens.', s?.prefixCacheQueryTokens ?? 0),
    one('counter', 'vllm:prefix_cache_hits_total', 'Prefix cache hits, in tokens.', s?.prefixCacheHitTokens ?? 0),
  ];
  // vLLM's speculative decoding counters, where it is on (acceptance rate = accepted / draft tokens).
  if (s?.specDecode)
    out.push(
      one('counter', 'vllm:spec_decode_num_drafts_total', 'Number of spec decoding drafts.', s.specDecode.drafts),
      one('counter', 'vllm:spec_decode_num_draft_tokens_total', 'Number of draft tokens.', s.specDecode.draftTokens),
      one('counter', 'vllm:spec_decode_num_accepted_tokens_total', 'Number of accepted tokens.', s.specDecode.acceptedTokens),
    );
  const finished = new Map<string, number>();
  for (const { labels, value } of m.finished.series()) {
    const reason = finishReasons[labels.reason] ?? labels.reason;
    finished.set(reason, (finished.get(reason) ?? 0) + value);
  }
  const success = ['# HELP vllm:request_success_total Finished requests, by finish reason.', '# TYPE vllm:request_success_total counter'];
  for (const [reason, value] of finished) success.push(`vllm:request_success_total${labelText({ ...base, finished_reason: reason })} ${value}`);
  out.push(success.join('\n'));
  out.push(
    m.ttft.render('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', base),
    m.itl.render('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', base),
    m.e2e.render('vllm:e2e_request_latency_seconds', 'Histogram of end-to-end request latency in seconds.', base),
    m.queueTime.render('vllm:request_queue_time_seconds', 'Histogram of time spent waiting in the queue in seconds.', base),
  );
  // vLLM's LoRA series, where adapters are served: its labels name the adapters with requests
  // waiting and running; its value is the time of the reading.
  if (live.lora)
    out.push(
      `# HELP vllm:lora_requests_info Running stats on lora requests.\n# TYPE vllm:lora_requests_info gauge\nvllm:lora_requests_info${labelText({
        max_lora: String(live.lora.maxLora),
        waiting_lora_adapters: live.lora.waiting.join(','),
        running_lora_adapters: live.lora.running.join(','),
      })} ${Date.now() / 1000}`,
    );
  return out;
}
