// `grpst bench [NAME]`: serving throughput and latency of a running server, as `vllm bench serve`
// reports them: at each concurrency, that many clients stream /v1/completions back to back (each
// request a distinct prompt of exactly --prompt_tokens token ids, so the prefix cache cannot
// help, and ignore_eos, so each generates exactly --output_tokens), and the table gives req/s,
// output tok/s and TTFT / TPOT / ITL percentiles, and where a run has more requests than clients,
// the sustained rate (every client busy: neither the first wave's arrival nor the last one's
// drain). --request_rate sends requests as they arrive (Poisson, or gamma gaps with --burstiness)
// instead, at most --concurrency in flight; --goodput adds the requests a second that met given
// latency objectives; --random_range_ratio varies the lengths by request, --dataset takes them from
// a ShareGPT conversation file (src/bench/workload.ts). Exit 4 when any request failed.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { badInput, failed } from '../util/errors.js';
import { goodputLine, sloKeys, type SloKey, type Slos } from '../bench/goodput.js';
import { positiveInt, positiveNumber, serverTargetOptions } from './options.js';

interface BenchFlags {
  url?: string;
  api_key?: string;
  concurrency?: number[];
  requests?: number;
  request_rate?: number;
  burstiness?: number;
  goodput?: Slos;
  random_range_ratio?: number;
  prefix_tokens?: number;
  dataset?: string;
  prompt_tokens: number;
  output_tokens: number;
  json: boolean;
}

export function register(program: Command): void {
  serverTargetOptions(
    program.command('bench').description('measure a running server: output tok/s, TTFT, TPOT and ITL at each concurrency (streamed /v1/completions)'),
    'the server at this address instead (a foreground grpst serve, or any OpenAI-compatible server)',
  )
    .option('--concurrency <list>', 'clients at once, one run per value (comma-separated; default: 1,8)', concurrencyList)
    .option('--requests <n>', 'requests per run (default: 4 per client, at least 8)', positiveInt('--requests'))
    .option('--request_rate <r>', 'requests arrive at this many a second (Poisson, as vllm bench serve --request-rate); --concurrency then caps those in flight (default: each client sends its next request when its last one ends)', positiveNumber('--request_rate', 'requests a second'))
    .option('--burstiness <b>', 'with --request_rate: how the arrivals bunch (the shape of the gamma distribution of the gaps between them, as vllm bench serve --burstiness): 1 Poisson, below 1 burstier, above 1 more even (default: 1)', positiveNumber('--burstiness', 'a gamma shape'))
    .option('--goodput <slos>', 'also report the requests a second that met these objectives, in ms: KEY:MS pairs (ttft, tpot, e2el) separated by commas or spaces, as vllm bench serve --goodput (e.g. ttft:500,tpot:50)', parseSlos)
    .option('--prompt_tokens <n>', 'prompt length in tokens', positiveInt('--prompt_tokens'), 128)
    .option('--output_tokens <n>', 'tokens each request generates', positiveInt('--output_tokens'), 64)
    .option('--random_range_ratio <r>', 'vary each request\'s prompt and output lengths: uniform in [N * (1 - r), N * (1 + r)] of --prompt_tokens and --output_tokens, fixed per request, as vllm bench serve --random-range-ratio (0 to below 1; default 0: every request the same)', rangeRatio)
    .option('--prefix_tokens <n>', 'start every prompt with the same N tokens, before its own --prompt_tokens, as vllm bench serve --random-prefix-len: a server with a prefix cache computes them once (the run prints the share of prompt tokens read from its cache)', positiveInt('--prefix_tokens'))
    .option('--dataset <file>', 'prompts from a ShareGPT-format conversation file instead, as vllm bench serve --dataset-name sharegpt: each conversation\'s first turn the prompt, its answer\'s length the output (fixed by --output_tokens where given); tokens counted by the server\'s /tokenize')
    .option('--json', 'print the results as JSON', false)
    .action(async (name: string, flags: BenchFlags, command: Command) => {
      if (flags.burstiness !== undefined && flags.request_rate === undefined)
        throw badInput('--burstiness shapes the arrivals of --request_rate, and no --request_rate was given', 'add --request_rate R (requests a second), or leave out --burstiness');
      // The dataset's prompts set their own lengths; a fixed --output_tokens still overrides theirs.
      const given = (option: string) => command.getOptionValueSource(option) === 'cli';
      if (flags.dataset !== undefined && given('prompt_tokens')) throw badInput('--dataset prompts come with their own lengths, and --prompt_tokens was given too', 'leave out --prompt_tokens (--output_tokens with --dataset fixes every output length)');
      if (flags.dataset !== undefined && flags.prefix_tokens !== undefined) throw badInput('--prefix_tokens starts every --prompt_tokens prompt with the same tokens, and --dataset prompts come whole', 'leave out one of them');
      if (flags.dataset !== undefined && flags.random_range_ratio !== undefined) throw badInput('--random_range_ratio varies the lengths of --prompt_tokens prompts, and --dataset prompts come with their own', 'leave out one of them');
      // Loaded when a bench starts, so the rest of the CLI starts fast.
      const [{ locate, locateUrl }, load, workload] = await Promise.all([import('./server-target.js'), import('../bench/load.js'), import('../bench/workload.js')]);
      const target = flags.url !== undefined ? await locateUrl(flags.url, flags.api_key) : await locate(name, flags.api_key);
      const limits = { maxInputLen: target.maxInputLen, maxModelLen: target.maxModelLen };
      const concurrencies = flags.concurrency ?? [1, 8];
      const requestsAt = (concurrency: number) => flags.requests ?? Math.max(8, 4 * concurrency);
      const work = flags.dataset
        ? await workload.datasetWorkload(flags.dataset, {
            needed: concurrencies.reduce((n, c) => n + requestsAt(c), 0),
            fixedOutput: given('output_tokens') ? flags.output_tokens : undefined,
            limits,
            tokenize: workload.serverTokenizer(target.baseUrl, target.model, target.apiKey),
          })
        : workload.syntheticWorkload(flags.prompt_tokens, flags.output_tokens, flags.random_range_ratio ?? 0, limits, flags.prefix_tokens);
      const spec = { url: target.baseUrl, model: target.model, apiKey: target.apiKey, outputTokens: work.outputTokens, requestRate: flags.request_rate, burstiness: flags.burstiness };
      // One short request first: the server pages its weights in and warms its allocator.
      const warm = await load.runLoad({ ...spec, requestRate: undefined, concurrency: 1, requests: 1, prompt: load.tokenPrompt(work.warmPromptTokens, 1), outputTokens: 4 });
      const warmError = warm.timings.find((t) => !t.ok)?.error;
      if (warmError) throw failed(`the first request to ${target.baseUrl} failed: ${warmError}`, 'check the server with a single request (grpst chat) and its log');
      if (!flags.json) {
        const arrivalProcess = flags.burstiness === undefined || flags.burstiness === 1 ? 'Poisson' : `gamma gaps, burstiness ${flags.burstiness}`;
        const arrivals = flags.request_rate === undefined ? '' : `, arriving at ${flags.request_rate} a second (${arrivalProcess}), the concurrency the most in flight`;
        console.log(`${target.baseUrl}, model ${target.model}: ${work.describe}${arrivals}\n`);
        console.log(load.summaryHeader);
      }
      const runs = [];
      let offset = 0;
      for (const concurrency of concurrencies) {
        const requests = requestsAt(concurrency);
        const base = offset;
        offset += requests;
        const outputOf = work.outputOf;
        const result = await load.runLoad({ ...spec, concurrency, requests, prompt: (i) => work.prompt(base + i), ...(outputOf ? { outputTokensOf: (i: number) => outputOf(base + i) } : {}) });
        const summary = load.summarize(result, flags.goodput);
        const firstFailure = result.timings.find((t) => !t.ok)?.error;
        runs.push({ ...summary, firstFailure });
        if (!flags.json) {
          console.log(load.summaryRow(summary));
          const loop = load.engineLoopLine(summary);
          if (loop) console.log(`  ${loop}`);
          const steady = load.steadyLine(summary);
          if (steady) console.log(`  ${steady}`);
          if (summary.goodput) console.log(`  ${goodputLine(summary.goodput, summary.requests)}`);
          const cache = load.promptCacheLine(summary);
          if (cache) console.log(`  ${cache}`);
          const drafting = load.specDecodeLine(summary);
          if (drafting) console.log(`  ${drafting}`);
          if (firstFailure) console.log(`  first failure: ${firstFailure}`);
        }
      }
      if (flags.json) console.log(JSON.stringify({ url: target.baseUrl, model: target.model, ...work.report, ...(flags.request_rate === undefined ? {} : { requestRate: flags.request_rate, burstiness: flags.burstiness ?? 1 }), runs }, null, 2));
      const failedRequests = runs.reduce((n, r) => n + r.failed, 0);
      if (failedRequests > 0) throw failed(`${failedRequests} request(s) failed`, 'see the first failure of each run above, and the server log');
    });
}

function concurrencyList(value: string): number[] {
  const list = value.split(',').map((v) => v.trim());
  if (list.some((v) => !/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 4096))
    throw new InvalidArgumentError(`--concurrency takes whole numbers from 1 to 4096 separated by commas, got "${value}"`);
  return list.map(Number);
}

function rangeRatio(value: string): number {
  const r = Number(value);
  if (value.trim() === '' || !Number.isFinite(r) || r < 0 || r >= 1) throw new InvalidArgumentError(`--random_range_ratio takes a number from 0 to below 1, got "${value}"`);
  return r;
}

/** `ttft:500,tpot:50` or `ttft:500 tpot:50` (vLLM's form) into objectives; a clear refusal otherwise. */
export function parseSlos(value: string): Slos {
  const slos: Slos = {};
  const pairs = value.split(/[\s,]+/).filter((p) => p !== '');
  const usage = `KEY:MS pairs with KEY one of ${sloKeys.join(', ')} (e.g. ttft:500,tpot:50)`;
  if (pairs.length === 0) throw new InvalidArgumentError(`--goodput takes ${usage}, got "${value}"`);
  for (const pair of pairs) {
    const m = /^([a-z0-9]+):(.+)$/.exec(pair);
    const key = m?.[1] as SloKey | undefined;
    const ms = Number(m?.[2]);
    if (!m || !sloKeys.includes(key!)) throw new InvalidArgumentError(`--goodput takes ${usage}, got "${pair}"`);
    if (!Number.isFinite(ms) || ms <= 0) throw new InvalidArgumentError(`--goodput's ${key} takes milliseconds above 0, got "${m[2]}"`);
    if (slos[key!] !== undefined) throw new InvalidArgumentError(`--goodput names ${key} twice`);
    slos[key!] = ms;
  }
  return slos;
}
