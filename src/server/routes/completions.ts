// POST /v1/completions: raw prompts (text or token ids, one or many) -> n submits each.
import { badRequest } from '../errors.js';
import { mergeChoices, runChoice, type ChoiceJob } from '../generate.js';
import { sendJson } from '../http.js';
import type { ResponseMeta } from '../openai/chat-mapping.js';
import { CompletionChoiceState, completionChunk, completionResponse, type CompletionPrompt, type CompletionView } from '../openai/completion-mapping.js';
import { planTools } from '../openai/constraints.js';
import { checkStreamOptions, checkTokenIds, choiceSampling, logitBias, minTokens, samplingFor, stopStrings, stopTokens, thinkBudget, tokenBudget } from '../openai/sampling.js';
import { completionRequestSchema, type CompletionRequest } from '../openai/schema-completion.js';
import { promptLogprobsAsked } from '../openai/prompt-logprobs.js';
import { allowedTokensConstraint, requestBans, truncatePrompt } from '../openai/token-rules.js';
import { answerFormat, answerFormatField, checkBestOf, requestPriority, unsupported } from '../openai/vllm-fields.js';
import { beamSearchAsked, checkBeamJob, runBeamSearches } from '../openai/beam-search.js';
import type { RequestContext } from '../router.js';
import { SseWriter } from '../sse.js';
import { usageOf } from './chat.js';
import { admit, maxChoicesPerRequest, parseBody, requestScope, unixNow } from './common.js';
import { streamUpdates } from './stream.js';

export async function completions(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, completionRequestSchema);
  const s = rc.server;
  checkStreamOptions(body);
  const { engine, name: modelName } = s.generatorFor(body.model);
  if (body.suffix) throw badRequest('suffix (fill-in-the-middle) is not supported; leave it out.', 'suffix');
  if (body.prompt_embeds != null) throw unsupported('prompt_embeds', 'prompt_embeds is not supported: send the prompt as text or token ids.');
  const n = body.n ?? 1;
  checkBestOf(body.best_of, n);
  const formatField = answerFormatField(body);
  const priority = requestPriority(body.priority, engine.info.schedulingPolicy);
  const plan = planTools(undefined, undefined, answerFormat(body), s.constraints, undefined, formatField);
  // vLLM's truncate_prompt_tokens keeps each prompt's last tokens; an echo repeats what was kept.
  const prompts = (await promptsOf(body, rc)).map((p) => {
    const ids = truncatePrompt(p.ids, body.truncate_prompt_tokens, s.limits);
    return ids === p.ids ? p : { ids, text: s.tokenizer.decode(ids) };
  });
  const echo = body.echo ?? false;
  const logprobs = body.logprobs ?? undefined;
  // lm-evaluation-harness scores a prompt with echo + logprobs + max_tokens 0; vLLM's
  // prompt_logprobs gives each prompt token's logprob and alternatives without the echo.
  const promptTop = promptLogprobsAsked(body.prompt_logprobs, body.stream);
  const budgets = prompts.map((p) => tokenBudget(body.max_tokens ?? 16, p.ids.length, s.limits, 'prompt'));
  if (budgets.some((b) => b === 0) && !echo && promptTop === undefined)
    throw badRequest('max_tokens 0 generates nothing; use it with "echo": true or "prompt_logprobs" to score the prompt.', 'max_tokens');
  const sampling = samplingFor(body, s.options);
  checkTokenIds(body.stop_token_ids ?? [], s.tokenizer.vocabSize, 'stop_token_ids');
  const bias = logitBias(body, s.tokenizer.vocabSize);
  const bans = requestBans(body.bad_words, s.tokenizer, s.bans);
  const constraint = allowedTokensConstraint(body.allowed_token_ids, engine, s.tokenizer.vocabSize, formatField, bans.badTokenIds) ?? (await plan.constrain(false));
  const budget = thinkBudget(body.thinking_token_budget, s.tokenizer, s.options);
  const stops = stopStrings(body, s.options);
  const skipSpecial = body.skip_special_tokens ?? s.options.skipSpecialTokens;
  const jobs: ChoiceJob[] = [];
  prompts.forEach((p, pi) => {
    for (let i = 0; i < n; i++)
      jobs.push({
        index: pi * n + i,
        submit: {
          tokens: p.ids,
          sampling: choiceSampling(sampling, i),
          maxTokens: budgets[pi],
          ...stopTokens(s.stopTokenIds, body),
          minTokens: minTokens(body.min_tokens, budgets[pi]),
          logprobs,
          // An echo with logprobs reads each choice's own; prompt_logprobs alone, the first choice's.
          promptLogprobs: ((echo && logprobs !== undefined) || (promptTop !== undefined && i === 0)) || undefined,
          promptTopLogprobs: promptTop,
          ...bans,
          logitBias: bias,
          cacheSalt: body.cache_salt ?? undefined,
          priority,
          thinkBudget: budget,
          constraint,
        },
        output: { stops, includeStop: body.include_stop_str_in_output ?? false, minTokens: body.min_tokens ?? 0, thinking: false, separateReasoning: false, toolCalls: false },
        decoder: s.decoder(skipSpecial),
      });
  });
  const beams = beamSearchAsked(body, n);
  if (beams) checkBeamJob(jobs[0], jobs.some((j) => j.submit.promptLogprobs), { budgetField: 'thinking_token_budget' });
  const meta: ResponseMeta = { id: s.newId('cmpl'), created: unixNow(), model: modelName, system_fingerprint: s.fingerprint };
  const view: CompletionView = {
    echo,
    logprobs,
    promptLogprobs: promptTop,
    tokenIds: body.return_token_ids === true,
    eosTokenId: s.tokenizer.eosTokenId,
    tokenNaming: body.return_tokens_as_token_ids ? 'ids' : 'text',
    tok: s.tokenizer,
  };
  const states = jobs.map((j) => new CompletionChoiceState(j.index, prompts[Math.floor(j.index / n)], view));
  const promptTokens = prompts.reduce((sum, p) => sum + p.ids.length, 0);

  const release = await admit(rc, priority);
  s.metrics.promptTokens.inc({}, promptTokens);
  const scope = requestScope(rc.signal);
  const cachedOf = (u: { index: number; cachedPromptTokens?: number }, prev: number | undefined) =>
    u.index === 0 && u.cachedPromptTokens !== undefined ? u.cachedPromptTokens : prev;
  try {
    // With use_beam_search the answers are found first; each choice then replays its beam.
    const engines = beams ? await runBeamSearches(engine, jobs, beams, scope.signal) : undefined;
    const updates = mergeChoices(jobs.map((job, i) => runChoice(job, { engine: engines?.[i] ?? engine, metrics: s.metrics, arrival: rc.arrival, signal: scope.signal })));
    let cached: number | undefined;
    if (!body.stream) {
      for await (const u of updates) {
        cached = cachedOf(u, cached);
        states[u.index].add(u);
      }
      const usage = usageOf(promptTokens, states.reduce((sum, c) => sum + c.completionTokens, 0), cached);
      // Each prompt's choices share its prompt_logprobs.
      for (const state of states) state.sharePromptLogprobs(states[Math.floor(state.index / n) * n]);
      return sendJson(rc.res, 200, completionResponse(meta, states, usage));
    }
    // continuous_usage_stats (vLLM's): with include_usage, every chunk carries the usage so far
    // and the last one the total; alone it does nothing, as in vLLM.
    const withUsage = body.stream_options?.include_usage === true;
    const continuous = withUsage && body.stream_options?.continuous_usage_stats === true;
    const usageNow = () => usageOf(promptTokens, states.reduce((sum, c) => sum + c.completionTokens, 0), cached);
    const sse = new SseWriter(rc.res);
    sse.start();
    const ok = await streamUpdates(sse, updates, async (u) => {
      cached = cachedOf(u, cached);
      const part = states[u.index].add(u);
      const finish = u.finishReason ? states[u.index].finishReason : null;
      if (part.text.length === 0 && !part.logprobs?.tokens.length && !finish) return;
      const choice = { index: u.index, text: part.text, logprobs: part.logprobs, finish_reason: finish, ...(finish ? { stop_reason: states[u.index].stopReason } : {}), ...states[u.index].streamIds(u) };
      await sse.send(completionChunk(meta, [choice], withUsage, continuous ? usageNow() : undefined));
    });
    if (!ok) return;
    if (withUsage) await sse.send(completionChunk(meta, [], true, usageNow()));
    sse.done();
  } finally {
    scope.abort('the request ended');
    release();
  }
}

/** Each prompt's ids and text; long texts are tokenized off the event loop. */
async function promptsOf(body: CompletionRequest, rc: RequestContext): Promise<CompletionPrompt[]> {
  const tok = rc.server.tokenizer;
  const p = body.prompt;
  const count = typeof p === 'string' || typeof p[0] === 'number' ? 1 : p.length;
  const n = body.n ?? 1;
  if (count * n > maxChoicesPerRequest)
    throw badRequest(
      `${count} prompts × n ${n} asks for ${count * n} completions in one request; at most ${maxChoicesPerRequest} are allowed. Split the prompts over several requests.`,
      'prompt',
      'invalid_value',
    );
  // `param` names the list entry that is empty (prompt[1]), as the embeddings route does.
  const fromText = (text: string, ids: number[], param = 'prompt'): CompletionPrompt => {
    if (ids.length === 0) throw badRequest(`${param === 'prompt' ? 'The prompt' : param} is empty; send at least one token of text.`, param);
    return { ids, text };
  };
  const fromIds = (ids: number[], param = 'prompt'): CompletionPrompt => {
    checkTokenIds(ids, tok.vocabSize, param);
    return { ids, text: tok.decode(ids) };
  };
  if (typeof p === 'string') return [fromText(p, await rc.server.texts.encode(p))];
  if (p.length > 0 && typeof p[0] === 'string') {
    const texts = p as string[];
    const ids = await rc.server.texts.encodeAll(texts);
    return texts.map((text, i) => fromText(text, ids[i], `prompt[${i}]`));
  }
  if (p.length > 0 && typeof p[0] === 'number') return [fromIds(p as number[])];
  return (p as number[][]).map((ids, i) => fromIds(ids, `prompt[${i}]`));
}
