// `grpst bench` against a real foreground server: what it reports matches what the server
// counted (requests, prompt and output tokens, from /metrics), and its mistakes exit 2.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint } from '../helpers/fixtures.js';
import { serveForeground, type ForegroundServer } from '../helpers/foreground-server.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { rangedLength } from '../../src/bench/load.js';

let work: string;
let cli: Cli;
let server: ForegroundServer | undefined;
let url = '';

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-bench-'));
  cli = makeCli();
  server = await serveForeground(cli, ['--model_dir', checkpoint('tiny-a'), '--served_model_name', 'tiny'], work);
  url = server.url;
}, 90_000);

afterAll(async () => {
  await server?.stop();
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

/** A reader of the server's /metrics now: one series' value (0 where it is missing). */
async function metrics(at = url): Promise<(series: string) => number> {
  const text = await (await fetch(`${at}/metrics`)).text();
  return (series) => Number(new RegExp(`^${series.replace(/[{}"/]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
}

async function counters(): Promise<Record<string, number>> {
  const get = await metrics();
  return {
    requests: get('grpst_requests_total{route="/v1/completions",status="200"}'),
    prompt: get('grpst_prompt_tokens_total'),
    generated: get('grpst_generation_tokens_total'),
  };
}

describe('grpst bench', () => {
  it('reports each concurrency run, and the server counted exactly the requests and tokens it sent', async () => {
    const before = await counters();
    const r = await cli.run(['bench', '--url', url, '--concurrency', '1,3', '--requests', '6', '--prompt_tokens', '20', '--output_tokens', '7', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { model: string; promptTokens: number; outputTokens: number; runs: { concurrency: number; requests: number; failed: number; requestsPerSecond: number; outputTokensPerSecond: number; ttftMs: number[]; itlMs: number[]; steady?: { fromS: number; toS: number; outputTokensPerSecond: number }; engineLoop?: { steps: number; stepMs: number; hostMsPerStep: number; busyShare: number } }[] };
    expect(report).toMatchObject({ model: 'tiny', promptTokens: 20, outputTokens: 7 });
    expect(report.runs.map((run) => [run.concurrency, run.requests, run.failed])).toEqual([
      [1, 6, 0],
      [3, 6, 0],
    ]);
    for (const run of report.runs) {
      expect(run.outputTokensPerSecond).toBeGreaterThan(0);
      expect(run.ttftMs[0]).toBeLessThanOrEqual(run.ttftMs[1]);
      expect(run.ttftMs[1]).toBeLessThanOrEqual(run.ttftMs[2]);
      expect(run.itlMs.every(Number.isFinite)).toBe(true);
      // More requests than clients: a window where every client is busy, after the first request
      // ended and before the last one was sent, with tokens streamed in it.
      expect(run.steady!.fromS).toBeLessThan(run.steady!.toS);
      expect(run.steady!.outputTokensPerSecond).toBeGreaterThan(0);
      // The server's engine loop over the run, from its /metrics: at least one step per output token
      // of the longest request, each step longer than the host work in it, stepping within the run.
      expect(run.engineLoop!.steps).toBeGreaterThanOrEqual(7);
      expect(run.engineLoop!.hostMsPerStep).toBeGreaterThan(0);
      expect(run.engineLoop!.stepMs).toBeGreaterThan(run.engineLoop!.hostMsPerStep);
      expect(run.engineLoop!.busyShare).toBeGreaterThan(0);
      // within the counters' window (at least the run's wall), but for one step under way at the first reading
      const wallSeconds = run.requests / run.requestsPerSecond;
      expect(run.engineLoop!.busyShare).toBeLessThanOrEqual(1 + run.engineLoop!.stepMs / 1000 / wallSeconds);
      // a server that does not draft: no speculative figures
      expect((run as { specDecode?: unknown }).specDecode).toBeUndefined();
    }
    // 12 measured requests and the warm-up one (4 tokens), every prompt exactly 20 tokens.
    const after = await counters();
    expect({ requests: after.requests - before.requests, prompt: after.prompt - before.prompt, generated: after.generated - before.generated }).toEqual({
      requests: 13,
      prompt: 13 * 20,
      generated: 12 * 7 + 4,
    });
  });

  it('--request_rate: requests arrive at that rate, at most --concurrency in flight, and the server answers each', async () => {
    const before = await counters();
    const r = await cli.run(['bench', '--url', url, '--request_rate', '40', '--concurrency', '2', '--requests', '5', '--prompt_tokens', '12', '--output_tokens', '6', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { requestRate?: number; runs: { concurrency: number; requests: number; failed: number }[] };
    expect(report.requestRate).toBe(40);
    expect(report.runs.map((run) => [run.concurrency, run.requests, run.failed])).toEqual([[2, 5, 0]]);
    const after = await counters();
    expect(after.requests - before.requests).toBe(6); // the warm-up and the five
    expect(after.generated - before.generated).toBe(4 + 5 * 6);
    const text = await cli.run(['bench', '--url', url, '--request_rate', '40', '--concurrency', '2', '--requests', '2', '--prompt_tokens', '8', '--output_tokens', '3'], { cwd: work });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('3 output tokens each, arriving at 40 a second (Poisson), the concurrency the most in flight');
  });

  it('--burstiness: gamma arrivals at --request_rate, recorded in the report; the server answers each', async () => {
    const before = await counters();
    const r = await cli.run(['bench', '--url', url, '--request_rate', '40', '--burstiness', '0.5', '--concurrency', '2', '--requests', '4', '--prompt_tokens', '10', '--output_tokens', '5', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { requestRate?: number; burstiness?: number; runs: { requests: number; failed: number }[] };
    expect([report.requestRate, report.burstiness]).toEqual([40, 0.5]);
    expect(report.runs.map((run) => [run.requests, run.failed])).toEqual([[4, 0]]);
    const after = await counters();
    expect(after.requests - before.requests).toBe(5); // the warm-up and the four
    expect(after.generated - before.generated).toBe(4 + 4 * 5);
    const text = await cli.run(['bench', '--url', url, '--request_rate', '40', '--burstiness', '3', '--concurrency', '1', '--requests', '1', '--prompt_tokens', '8', '--output_tokens', '2'], { cwd: work });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('arriving at 40 a second (gamma gaps, burstiness 3), the concurrency the most in flight');
  });

  it('--goodput: the requests a second within the objectives, none when no request can meet them', async () => {
    const r = await cli.run(['bench', '--url', url, '--goodput', 'ttft:60000,tpot:60000,e2el:60000', '--concurrency', '2', '--requests', '3', '--prompt_tokens', '8', '--output_tokens', '4', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const run = (JSON.parse(r.stdout) as { runs: { requests: number; requestsPerSecond: number; goodput?: { good: number; requestsPerSecond: number; slos: object } }[] }).runs[0];
    expect(run.goodput?.slos).toEqual({ ttft: 60000, tpot: 60000, e2el: 60000 });
    expect(run.goodput?.good).toBe(3);
    expect(run.goodput?.requestsPerSecond).toBeCloseTo(run.requestsPerSecond, 9);
    const none = await cli.run(['bench', '--url', url, '--goodput', 'e2el:0.001', '--concurrency', '1', '--requests', '2', '--prompt_tokens', '8', '--output_tokens', '2'], { cwd: work });
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toMatch(/^  goodput: 0\.000 req\/s \(0 of 2 requests within e2el <= 0\.001 ms\)$/m);
  });

  it('--random_range_ratio: each request its own prompt and output length, as the server counted them', async () => {
    const before = await counters();
    const r = await cli.run(['bench', '--url', url, '--concurrency', '2', '--requests', '6', '--prompt_tokens', '20', '--output_tokens', '8', '--random_range_ratio', '0.5', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { randomRangeRatio?: number; runs: { requests: number; failed: number }[] };
    expect(report.randomRangeRatio).toBe(0.5);
    expect(report.runs.map((run) => [run.requests, run.failed])).toEqual([[6, 0]]);
    const prompts = [0, 1, 2, 3, 4, 5].map(rangedLength(20, 0.5, 1));
    const outputs = [0, 1, 2, 3, 4, 5].map(rangedLength(8, 0.5, 2));
    expect(new Set(prompts).size).toBeGreaterThan(1);
    expect(new Set(outputs).size).toBeGreaterThan(1);
    const after = await counters();
    // the warm-up (20 prompt tokens, 4 generated) and the six, each of its own lengths
    expect({ prompt: after.prompt - before.prompt, generated: after.generated - before.generated }).toEqual({
      prompt: 20 + prompts.reduce((a, b) => a + b, 0),
      generated: 4 + outputs.reduce((a, b) => a + b, 0),
    });
    const text = await cli.run(['bench', '--url', url, '--concurrency', '1', '--requests', '1', '--prompt_tokens', '20', '--output_tokens', '8', '--random_range_ratio', '0.5'], { cwd: work });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('prompts of 10-30 tokens, 4-12 output tokens (uniform per request)');
  });

  it('--prefix_tokens: every prompt starts with the same tokens, which the prefix cache serves after the first', async () => {
    const before = await counters();
    const r = await cli.run(['bench', '--url', url, '--concurrency', '1', '--requests', '4', '--prefix_tokens', '40', '--prompt_tokens', '8', '--output_tokens', '4', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { prefixTokens?: number; promptTokens: number; runs: { requests: number; failed: number; promptCache?: { promptTokens: number; cachedTokens: number } }[] };
    expect(report).toMatchObject({ prefixTokens: 40, promptTokens: 8 });
    const run = report.runs[0];
    expect([run.requests, run.failed]).toEqual([4, 0]);
    // Each prompt is the 40 shared tokens and 8 of its own, as the server counted them (and the
    // warm-up's 8); after the first, the prefix's whole KV blocks come from the cache, never more
    // than the prefix.
    const after = await counters();
    expect(after.prompt - before.prompt).toBe(8 + 4 * 48);
    expect(run.promptCache!.promptTokens).toBe(4 * 48);
    expect(run.promptCache!.cachedTokens).toBeGreaterThanOrEqual(3 * 32);
    expect(run.promptCache!.cachedTokens).toBeLessThanOrEqual(4 * 40);
    const text = await cli.run(['bench', '--url', url, '--concurrency', '1', '--requests', '2', '--prefix_tokens', '40', '--prompt_tokens', '8', '--output_tokens', '4'], { cwd: work });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('prompts of a shared 40-token prefix + 8 tokens, 4 output tokens each');
    expect(text.stdout).toMatch(/prefix cache: \d+ of 96 prompt tokens \(\d+\.\d%\) read from the cache/);
  });

  it('--dataset: ShareGPT conversations as the prompts and answer lengths, counted by the server as sent', async () => {
    const usable = [
      ['Explain how a hash map handles collisions, with an example in plain words.', 'A hash map stores each key in a bucket chosen by its hash; when two keys land in the same bucket it keeps both, in a short list or by probing the next free slot.'],
      ['Write a haiku about a quiet harbour at dawn.', 'Grey water, still boats / a gull folds the morning light / ropes creak, then silence'],
      ['What is the capital of Australia, and why was it chosen?', 'Canberra: it was built as a compromise between Sydney and Melbourne, which both wanted to be the capital.'],
      ['Give three tips for writing clear commit messages.', 'Say what changed and why in the first line, keep it short, and explain anything surprising in the body.'],
    ];
    const conversations = [
      ...usable.map(([q, a]) => ({ conversations: [{ from: 'human', value: q }, { from: 'gpt', value: a }] })),
      { conversations: [{ from: 'human', value: 'Hi' }, { from: 'gpt', value: 'Hello! How can I help you today?' }] }, // a prompt under 4 tokens
      { conversations: [{ from: 'human', value: 'A question left unanswered.' }] }, // one turn
    ];
    const file = path.join(work, 'sharegpt.json');
    fs.writeFileSync(file, JSON.stringify(conversations));
    const count = async (text: string) => ((await (await fetch(`${url}/tokenize`, { method: 'POST', body: JSON.stringify({ model: 'tiny', prompt: text }) })).json()) as { count: number }).count;
    const prompts = await Promise.all(usable.map(([q]) => count(q)));
    const answers = await Promise.all(usable.map(([, a]) => count(a)));
    const warm = Math.min(...prompts); // the warm-up's prompt: as long as the shortest, 4 tokens out
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

    const before = await counters();
    const r = await cli.run(['bench', '--url', url, '--dataset', file, '--concurrency', '2', '--requests', '4', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { dataset?: { conversations: number; requests: number; promptTokensMean: number }; runs: { requests: number; failed: number }[] };
    expect(report.dataset).toMatchObject({ conversations: 5, requests: 4 });
    expect(report.dataset!.promptTokensMean).toBeCloseTo(sum(prompts) / 4, 9);
    expect(report.runs.map((run) => [run.requests, run.failed])).toEqual([[4, 0]]);
    const after = await counters();
    expect({ prompt: after.prompt - before.prompt, generated: after.generated - before.generated }).toEqual({ prompt: warm + sum(prompts), generated: 4 + sum(answers) });

    // --output_tokens fixes every answer's length; the header says where the prompts came from
    const fixedBefore = await counters();
    const fixed = await cli.run(['bench', '--url', url, '--dataset', file, '--output_tokens', '3', '--concurrency', '1', '--requests', '4'], { cwd: work });
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fixed.stdout).toContain(`4 prompts from ${file} (5 of its 5 conversations tokenized;`);
    expect(fixed.stdout).toContain('output tokens 3 each)');
    expect((await counters()).generated - fixedBefore.generated).toBe(4 + 4 * 3);

    // more requests than conversations that fit: refused before any is sent
    const few = await cli.run(['bench', '--url', url, '--dataset', file, '--concurrency', '1', '--requests', '5'], { cwd: work });
    expect(few.code).toBe(2);
    expect(few.stderr).toContain(`--dataset ${file} has 4 conversations that fit (of 5 with two turns;`);
    expect(few.stderr).toContain('and the runs send 5 requests');
    expect(few.stderr).toContain('fix: lower --requests or --concurrency, or pass a larger file');
    const mixed = await cli.run(['bench', '--url', url, '--dataset', file, '--prompt_tokens', '8'], { cwd: work });
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain('--dataset prompts come with their own lengths, and --prompt_tokens was given too');
    const prefixed = await cli.run(['bench', '--url', url, '--dataset', file, '--prefix_tokens', '8'], { cwd: work });
    expect(prefixed.code).toBe(2);
    expect(prefixed.stderr).toContain('--prefix_tokens starts every --prompt_tokens prompt with the same tokens, and --dataset prompts come whole');
  });

  it('prints a markdown table by default', async () => {
    const r = await cli.run(['bench', '--url', url.replace('http://', ''), '--concurrency', '2', '--requests', '2', '--prompt_tokens', '8', '--output_tokens', '3'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${url}, model tiny: prompts of 8 tokens, 3 output tokens each`);
    expect(r.stdout).toMatch(/^\| 2 \| 2 \| [\d.]+ \| [\d.]+ \| [\d.]+ \/ [\d.]+ \/ [\d.]+ \|/m);
    expect(r.stdout).toMatch(/^  engine loop: \d+ steps, [\d.]+ ms a step of which [\d.]+ ms host work \([\d.]+%\), stepping \d+% of the run$/m);
    // two requests for two clients: one wave, no sustained rate to give
    expect(r.stdout).not.toContain('sustained:');
    expect(r.stdout).not.toContain('goodput:'); // only where objectives are given
  });

  it('failed requests are counted in their run and make the exit code 4', async () => {
    // A server that streams a well-formed answer to every other request and answers 500 to the rest.
    let calls = 0;
    const stub = http.createServer((req, res) => {
      if (req.url === '/v1/models') return void res.end(JSON.stringify({ data: [{ id: 'stub', max_model_len: 1000 }] }));
      if (req.url === '/metrics') return void res.writeHead(404).end(); // a server without grpst's engine counters
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        if (calls++ % 2 === 1) return void res.writeHead(500).end('{"error":{"message":"boom"}}');
        const n = (JSON.parse(body) as { max_tokens: number }).max_tokens;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (let i = 0; i < n; i++) res.write(`data: ${JSON.stringify({ choices: [{ text: 'x' }] })}\n\n`);
        res.end(`data: ${JSON.stringify({ choices: [], usage: { completion_tokens: n } })}\n\ndata: [DONE]\n\n`);
      });
    });
    await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve));
    try {
      const at = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;
      const r = await cli.run(['bench', '--url', at, '--concurrency', '1', '--requests', '4', '--output_tokens', '5'], { cwd: work });
      expect(r.code, r.stderr).toBe(4);
      expect(r.stdout).toMatch(/^\| 1 \| 4 \(2 failed\) \|/m);
      expect(r.stdout).toMatch(/first failure: HTTP 500: boom$/m); // the envelope's message, not the JSON around it
      expect(r.stderr).toContain('2 request(s) failed');
      expect(r.stdout).not.toContain('engine loop:');
    } finally {
      await new Promise((resolve) => stub.close(resolve));
    }
  });

  it('a server that drafts (prompt lookup): each run reports the draft tokens its model took, as its /metrics counted', async () => {
    const drafting = await serveForeground(cli, ['--model_dir', checkpoint('tiny-a'), '--served_model_name', 'tiny', '--speculative_config', '{"method": "ngram", "num_speculative_tokens": 4}'], work);
    try {
      const spec = async () => {
        const get = await metrics(drafting.url);
        return { drafts: get('grpst_spec_decode_drafts_total'), draftTokens: get('grpst_spec_decode_draft_tokens_total'), acceptedTokens: get('grpst_spec_decode_accepted_tokens_total') };
      };
      const before = await spec();
      const r = await cli.run(['bench', '--url', drafting.url, '--concurrency', '1', '--requests', '3', '--prompt_tokens', '16', '--output_tokens', '40', '--json'], { cwd: work });
      expect(r.code, r.stderr).toBe(0);
      const after = await spec();
      const run = (JSON.parse(r.stdout) as { runs: { specDecode?: { drafts: number; draftTokens: number; acceptedTokens: number } }[] }).runs[0];
      // tiny-a repeats itself, so prompt lookup drafts and most drafts are right; the run's figures
      // are the server's counters over the run (the warm-up request before it may draft too)
      expect(run.specDecode!.draftTokens).toBeGreaterThan(0);
      expect(run.specDecode!.acceptedTokens).toBeGreaterThan(0);
      expect(run.specDecode!.acceptedTokens).toBeLessThanOrEqual(run.specDecode!.draftTokens);
      expect(run.specDecode!.draftTokens).toBeLessThanOrEqual(after.draftTokens - before.draftTokens);
      expect(run.specDecode!.drafts).toBeLessThanOrEqual(after.drafts - before.drafts);
      const text = await cli.run(['bench', '--url', drafting.url, '--concurrency', '1', '--requests', '2', '--prompt_tokens', '16', '--output_tokens', '40'], { cwd: work });
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/speculative decoding: [\d,]+ of [\d,]+ draft tokens taken \(\d+\.\d%\) in [\d,]+ drafted steps, \d\.\d\d tokens a drafted step/);
    } finally {
      await drafting.stop();
    }
  });

  it('refuses what cannot work before sending anything, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['--prompt_tokens', '40000', '--output_tokens', '2000'], /= 42000 tokens per request, past the model's max_model_len 40960\n.*fix: lower --prompt_tokens or --output_tokens/],
      [['--concurrency', '1,0'], /--concurrency takes whole numbers from 1 to 4096 separated by commas, got "1,0"/],
      [['--request_rate', '0'], /--request_rate takes requests a second \(a number above 0\), got "0"/],
      [['--goodput', 'itl:20'], /--goodput takes KEY:MS pairs with KEY one of ttft, tpot, e2el \(e\.g\. ttft:500,tpot:50\), got "itl:20"/],
      [['--random_range_ratio', '1'], /--random_range_ratio takes a number from 0 to below 1, got "1"/],
      [['--burstiness', '2'], /--burstiness shapes the arrivals of --request_rate, and no --request_rate was given\n.*fix: add --request_rate R/],
      [['--request_rate', '5', '--burstiness', '-1'], /--burstiness takes a gamma shape \(a number above 0\), got "-1"/],
      [['--output_tokens', 'many'], /--output_tokens takes a whole number of at least 1, got "many"/],
      [['--prefix_tokens', '40000', '--prompt_tokens', '1000'], /--prefix_tokens 40000 \+ --prompt_tokens 1000 (is past the model's max_input_len|\+ --output_tokens 64 = 41064 tokens per request)/],
      [['--prefix_tokens', '0'], /--prefix_tokens takes a whole number of at least 1, got "0"/],
    ];
    for (const [args, message] of cases) {
      const r = await cli.run(['bench', '--url', url, ...args], { cwd: work });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    const unknown = await cli.run(['bench', 'no-such-server'], { cwd: work });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no-such-server/);
  });
});
