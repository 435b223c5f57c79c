// /metrics under vLLM's names too, on the real runtime: every vllm: series carries model_name and
// engine as vLLM's do, and reads the same counts as the server's own series, so a dashboard or
// autoscaler written for vLLM sees this server's load.
import { describe, expect, it } from 'vitest';
import { get, post, serveForFile } from './server-harness.js';

const file = serveForFile('tiny-a', { modelId: 'qwen3-test' });

/** Every sample line as "name{labels}" -> value, and each name's TYPE. */
function parse(text: string): { samples: Map<string, number>; types: Map<string, string> } {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1], t[2]);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) samples.set(m[1], Number(m[2]));
  }
  return { samples, types };
}

describe('vLLM-named metrics', () => {
  it('carry model_name and engine, and read the same counts as the grpst series', async () => {
    const messages = [{ role: 'user', content: 'Tell me about the sea.' }];
    const first = await post(`${file.srv().url}/v1/chat/completions`, { model: 'qwen3-test', messages, max_tokens: 5, temperature: 0 });
    expect(first.json.choices[0].finish_reason).toBe('length');
    const stopId = (await post(`${file.srv().url}/v1/chat/completions`, { model: 'qwen3-test', messages, max_tokens: 5, temperature: 0, return_token_ids: true })).json.choices[0].token_ids[0];
    await post(`${file.srv().url}/v1/chat/completions`, { model: 'qwen3-test', messages, max_tokens: 5, temperature: 0, stop_token_ids: [stopId] });
    const { samples, types } = parse((await get(`${file.srv().url}/metrics`)).text);
    const vllm = [...samples.keys()].filter((k) => k.startsWith('vllm:'));
    expect(vllm.length).toBeGreaterThan(20);
    for (const k of vllm) expect(k).toContain('{model_name="qwen3-test",engine="0"');
    const v = (name: string, extra = '') => samples.get(`${name}{model_name="qwen3-test",engine="0"${extra}}`);
    const g = (name: string) => samples.get(name);
    expect(v('vllm:prompt_tokens_total')).toBe(g('grpst_prompt_tokens_total'));
    expect(v('vllm:generation_tokens_total')).toBe(g('grpst_generation_tokens_total'));
    expect(v('vllm:generation_tokens_total')).toBeGreaterThan(0);
    expect(v('vllm:request_success_total', ',finished_reason="length"')).toBe(g('grpst_request_finished_total{reason="length"}'));
    expect(v('vllm:request_success_total', ',finished_reason="length"')).toBe(2);
    expect(v('vllm:request_success_total', ',finished_reason="stop"')).toBe(1);
    expect(v('vllm:kv_cache_usage_perc')).toBe(g('grpst_kv_cache_usage_ratio'));
    expect(v('vllm:num_requests_running')).toBe(g('grpst_engine_sequences_running'));
    expect(v('vllm:prefix_cache_queries_total')).toBe(g('grpst_prefix_cache_query_tokens_total'));
    expect(v('vllm:prefix_cache_hits_total')).toBe(g('grpst_prefix_cache_hit_tokens_total'));
    expect(v('vllm:prefix_cache_hits_total')).toBeGreaterThan(0); // the same prompt three times
    for (const h of ['time_to_first_token_seconds', 'inter_token_latency_seconds', 'e2e_request_latency_seconds']) {
      expect(types.get(`vllm:${h}`)).toBe('histogram');
      expect(v(`vllm:${h}_count`), h).toBe(g(`grpst_${h}_count`));
      expect(v(`vllm:${h}_bucket`, ',le="+Inf"'), h).toBe(g(`grpst_${h}_bucket{le="+Inf"}`));
      expect(v(`vllm:${h}_bucket`, ',le="0.25"'), h).toBe(g(`grpst_${h}_bucket{le="0.25"}`));
    }
    expect(v('vllm:e2e_request_latency_seconds_count')).toBe(3);
    expect(types.get('vllm:num_requests_waiting')).toBe('gauge');
    expect(types.get('vllm:request_success_total')).toBe('counter');
  });

  it('time the engine loop: its steps, and the part inside the forward pass', async () => {
    const read = async () => parse((await get(`${file.srv().url}/metrics`)).text);
    const before = await read();
    const wallStart = performance.now();
    const messages = [{ role: 'user', content: 'Count to twenty.' }];
    const answer = await post(`${file.srv().url}/v1/chat/completions`, { model: 'qwen3-test', messages, max_tokens: 12, temperature: 0 });
    const wallSeconds = (performance.now() - wallStart) / 1000;
    expect(answer.json.usage.completion_tokens).toBe(12);
    const after = await read();
    const grew = (name: string) => after.samples.get(name)! - before.samples.get(name)!;
    for (const name of ['grpst_engine_step_seconds_total', 'grpst_engine_forward_seconds_total']) expect(after.types.get(name)).toBe('counter');
    expect(grew('grpst_engine_steps_total')).toBeGreaterThanOrEqual(12);
    expect(grew('grpst_engine_forward_seconds_total')).toBeGreaterThan(0);
    expect(grew('grpst_engine_step_seconds_total')).toBeGreaterThan(grew('grpst_engine_forward_seconds_total'));
    // Within the request's wall time, give or take a step (a step's time is counted after its events).
    expect(grew('grpst_engine_step_seconds_total')).toBeLessThan(wallSeconds + (2 * grew('grpst_engine_step_seconds_total')) / grew('grpst_engine_steps_total'));
  });
});
