// One choice of one request: submit to the engine, detokenize, parse, and hand back updates
// that the endpoint mappers turn into OpenAI responses or chunks. Endpoints differ only in how
// they render updates; the engine/decoder/parser loop lives here once.
import type { GenerationEngine, SubmitRequest, TokenEvent, TopLogprob } from '../engine/types.js';
import { OutputParser, type OutputOptions } from '../parse/output.js';
import type { ParsedToolCall } from '../parse/tool-calls.js';
import { ApiError } from './errors.js';
import type { ServerMetrics } from './metrics.js';

export interface StreamDecoder {
  push(ids: readonly number[]): string;
  flush(): string;
}

export interface ChoiceJob {
  index: number;
  submit: Omit<SubmitRequest, 'signal'>;
  output: OutputOptions;
  decoder: StreamDecoder;
}

export interface TokenLogprob {
  id: number;
  logprob: number;
  top: TopLogprob[];
}

export type PromptLogprobs = NonNullable<TokenEvent['promptLogprobs']>;

export type ChoiceFinish = 'stop' | 'length' | 'tool_calls';

export interface ChoiceUpdate {
  index: number;
  content: string;
  reasoning: string;
  toolCalls: ParsedToolCall[];
  /** Logprobs of the tokens whose text this update releases (all remaining ones on the last update). */
  logprobs: TokenLogprob[];
  /** The ids of those same tokens (vLLM's return_token_ids); the stop token that ended the choice is the last. */
  tokenIds?: number[];
  /** On the last update, when a stop token ended the choice: which one. */
  stopTokenId?: number;
  /** On the first update when the job asked for prompt logprobs. */
  promptLogprobs?: PromptLogprobs;
  /** Set on the last update. */
  finishReason?: ChoiceFinish;
  /** On the last update, when a stop string ended the choice: which one. */
  stopString?: string;
  /** Tokens generated so far (on the last update: the total). */
  completionTokens: number;
  /** Prompt tokens the prefix cache supplied (first update only). */
  cachedPromptTokens?: number;
  /** On the last update: the tokens that were reasoning (think block, tags included), counted per engine event. */
  reasoningTokens?: number;
}

export interface RunContext {
  engine: GenerationEngine;
  metrics: ServerMetrics;
  /** When the HTTP request arrived (performance.now()), for time to first token. */
  arrival: number;
  /** Aborted when the client leaves or the server stops: the engine frees the sequence at once. */
  signal: AbortSignal;
}

export async function* runChoice(job: ChoiceJob, ctx: RunContext): AsyncGenerator<ChoiceUpdate> {
  const own = new AbortController();
  const onAbort = () => own.abort(ctx.signal.reason);
  if (ctx.signal.aborted) onAbort();
  else ctx.signal.addEventListener('abort', onAbort, { once: true });
  const parser = new OutputParser(job.output);
  const wantLogprobs = job.submit.logprobs !== undefined;
  let pending: TokenLogprob[] = [];
  let pendingIds: number[] = [];
  let completionTokens = 0;
  let reasoningTokens = 0;
  let last = ctx.arrival;
  let first = true;
  let finishReason: ChoiceFinish | undefined;
  const finalUpdate = (from: ChoiceUpdate, reason: ChoiceFinish): ChoiceUpdate => {
    const finish: ChoiceFinish = reason === 'stop' && parser.toolCallCount > 0 ? 'tool_calls' : reason;
    ctx.metrics.finished.inc({ reason: finish });
    ctx.metrics.e2e.observe((performance.now() - ctx.arrival) / 1000);
    finishReason = finish;
    const update = { ...from, logprobs: pending, tokenIds: pendingIds, finishReason: finish, completionTokens, reasoningTokens };
    pending = [];
    pendingIds = [];
    return update;
  };
  try {
    const events = ctx.engine.submit({ ...job.submit, signal: own.signal });
    for await (const ev of events) {
      const update: ChoiceUpdate = { index: job.index, content: '', reasoning: '', toolCalls: [], logprobs: [], completionTokens };
      if (first) {
        if (ev.promptLogprobs) update.promptLogprobs = ev.promptLogprobs;
        if (ev.cachedPromptTokens !== undefined) update.cachedPromptTokens = ev.cachedPromptTokens;
      }
      if (ev.tokens.length > 0) {
        const now = performance.now();
        if (completionTokens === 0) ctx.metrics.ttft.observe((now - ctx.arrival) / 1000);
        else ctx.metrics.itl.observe((now - last) / 1000);
        last = now;
        completionTokens += ev.tokens.length;
        update.completionTokens = completionTokens;
        ctx.metrics.generationTokens.inc({}, ev.tokens.length);
        if (wantLogprobs) pending.push(...eventLogprobs(ev));
        pendingIds.push(...ev.tokens);
        const wasReasoning = parser.inReasoning;
        const delta = parser.push(job.decoder.push(ev.tokens), completionTokens);
        // Counted as they come (the parser knows where the think block opens and ends), not
        // re-encoded afterwards: an event that opened, filled or closed the block counts.
        if (wasReasoning || parser.inReasoning || delta.reasoning.length > 0) reasoningTokens += ev.tokens.length;
        update.content = delta.content;
        update.reasoning = delta.reasoning;
        update.toolCalls = delta.toolCalls;
        if (delta.stopped) {
          // A stop string (or the one tool call allowed) ended it: the engine must stop spending
          // steps on this sequence now.
          own.abort(delta.stopString !== undefined ? 'stop string' : 'tool call');
          update.stopString = delta.stopString;
          yield finalUpdate(update, 'stop');
          return;
        }
      }
      if (ev.finishReason) {
        if (ev.finishReason === 'error') {
          ctx.metrics.finished.inc({ reason: 'error' });
          throw new ApiError(500, `Generation failed: ${ev.error ?? 'unknown engine error'}`, { code: 'engine_error' });
        }
        if (ev.finishReason === 'cancelled') {
          ctx.metrics.finished.inc({ reason: 'cancelled' });
          throw cancelledError(ctx.signal);
        }
        // The end token was sampled too: it counts as a completion token and has its logprob entry
        // (the last one, which scorers read as the generated token's), as vLLM reports it.
        if (ev.stopTokenId !== undefined) {
          completionTokens += 1;
          pendingIds.push(ev.stopTokenId);
          update.stopTokenId = ev.stopTokenId;
          if (wantLogprobs && ev.stopLogprob) pending.push({ id: ev.stopTokenId, ...ev.stopLogprob });
        }
        const tail = parser.push(job.decoder.flush());
        const end = parser.finish();
        update.content += tail.content + end.content;
        update.reasoning += tail.reasoning + end.reasoning;
        update.toolCalls.push(...tail.toolCalls, ...end.toolCalls);
        if (tail.stopped) update.stopString = tail.stopString;
        yield finalUpdate(update, tail.stopped ? 'stop' : ev.finishReason);
        return;
      }
      if (update.content || update.reasoning || update.toolCalls.length > 0) {
        update.logprobs = pending;
        update.tokenIds = pendingIds;
        pending = [];
        pendingIds = [];
      }
      if (first || update.content || update.reasoning || update.toolCalls.length > 0 || update.logprobs.length > 0) yield update;
      first = false;
    }
    // The iterator ended without a finish reason: only an abort does that.
    ctx.metrics.finished.inc({ reason: 'cancelled' });
    throw cancelledError(ctx.signal);
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    if (finishReason === undefined) own.abort('request ended');
  }
}

function cancelledError(signal: AbortSignal): ApiError {
  const reason = signal.aborted ? String(signal.reason instanceof Error ? signal.reason.message : signal.reason) : 'the engine cancelled it';
  return new ApiError(503, `The request was cancelled: ${reason}.`, { type: 'server_error', code: 'cancelled' });
}

function eventLogprobs(ev: TokenEvent): TokenLogprob[] {
  return ev.tokens.map((id, i) => ({ id, logprob: ev.logprobs?.[i] ?? 0, top: ev.topLogprobs?.[i] ?? [] }));
}

/** Runs several choice generators at once and yields their updates as they come. */
export async function* mergeChoices(gens: AsyncGenerator<ChoiceUpdate>[]): AsyncGenerator<ChoiceUpdate> {
  type Step = { i: number; r?: IteratorResult<ChoiceUpdate>; err?: unknown };
  // Every pending next() is settled into a Step so none can become an unhandled rejection.
  const pull = (i: number): Promise<Step> => gens[i].next().then((r) => ({ i, r }), (err: unknown) => ({ i, err }));
  const next = gens.map((_, i) => pull(i));
  const live = new Set(gens.map((_, i) => i));
  try {
    while (live.size > 0) {
      const step = await Promise.race([...live].map((i) => next[i]));
      if (step.err !== undefined) throw step.err;
      if (step.r!.done) {
        live.delete(step.i);
        continue;
      }
      next[step.i] = pull(step.i);
      yield step.r!.value;
    }
  } finally {
    // The caller aborts the request's signal on failure, which ends the others' engine streams.
    for (const i of live) void gens[i].return(undefined).catch(() => undefined);
  }
}
