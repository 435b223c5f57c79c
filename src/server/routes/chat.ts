// POST /v1/chat/completions: messages -> template -> n engine submits -> message or SSE chunks.
import { badRequest } from '../errors.js';
import { mergeChoices, runChoice, type ChoiceJob, type ChoiceUpdate, type PromptLogprobs } from '../generate.js';
import { sendJson } from '../http.js';
import { ChatChoiceAccumulator, ChatChunker, chatResponse, type ChatView, type ResponseMeta, type Usage } from '../openai/chat-mapping.js';
import { echoedMessage, toTemplateMessages } from '../openai/chat-messages.js';
import { chatRenderOptions, chatThinking } from '../openai/chat-render.js';
import { planTools } from '../openai/constraints.js';
import { checkStreamOptions, checkTokenIds, stopTokens, choiceSampling, logitBias, minTokens, samplingFor, stopStrings, thinkBudget, tokenBudget } from '../openai/sampling.js';
import { chatRequestSchema, type ChatRequest } from '../openai/schema-chat.js';
import { promptLogprobsAsked, vllmPromptLogprobs } from '../openai/prompt-logprobs.js';
import { allowedTokensConstraint, requestBans, truncatePrompt } from '../openai/token-rules.js';
import { answerFormat, answerFormatField, checkBestOf, requestPriority } from '../openai/vllm-fields.js';
import { beamSearchAsked, checkBeamJob, runBeamSearches } from '../openai/beam-search.js';
import type { RequestContext } from '../router.js';
import { SseWriter } from '../sse.js';
import { answerThinking, thinkReading } from '../think-reading.js';
import { admit, parseBody, requestScope, unixNow } from './common.js';
import { streamUpdates } from './stream.js';

export async function chatCompletions(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, chatRequestSchema);
  const s = rc.server;
  checkStreamOptions(body);
  const { engine, name: modelName } = s.generatorFor(body.model);
  const thinking = chatThinking(body, s.options.enableThinking);
  const format = answerFormat(body);
  const n = body.n ?? 1;
  checkBestOf(body.best_of, n);
  const formatField = answerFormatField(body);
  const priority = requestPriority(body.priority, engine.info.schedulingPolicy);
  const plan = planTools(body.tools, body.tool_choice, format, s.constraints, body.parallel_tool_calls, formatField);
  const renderOptions = chatRenderOptions(body, { thinking, tools: plan.tools, template: s.served.template, requestTemplates: s.served.requestTemplates });
  const rendered = await s.render(toTemplateMessages(body.messages), renderOptions);
  // vLLM's truncate_prompt_tokens cuts the rendered prompt, template tokens included.
  const prompt = { text: rendered.text, ids: truncatePrompt(rendered.ids, body.truncate_prompt_tokens, s.limits) };
  // The output is read, and a constrained answer's grammar starts, where the prompt leaves off.
  const reading = thinkReading(thinking, prompt.text, renderOptions.continueFinalMessage === true);
  const promptTokens = prompt.ids.length;
  const maxTokens = tokenBudget(body.max_completion_tokens ?? body.max_tokens, promptTokens, s.limits, 'messages', 'max_tokens', s.options.defaultMaxTokens);
  if (body.top_logprobs != null && !body.logprobs) throw badRequest('top_logprobs needs "logprobs": true.', 'top_logprobs');
  const logprobs = body.logprobs ? (body.top_logprobs ?? 0) : undefined;
  const sampling = samplingFor(body, s.options);
  checkTokenIds(body.stop_token_ids ?? [], s.tokenizer.vocabSize, 'stop_token_ids');
  const bias = logitBias(body, s.tokenizer.vocabSize);
  const bans = requestBans(body.bad_words, s.tokenizer, s.bans);
  const grammarField = formatField ?? (plan.constrained ? 'tool_choice' : undefined);
  const constraint = allowedTokensConstraint(body.allowed_token_ids, engine, s.tokenizer.vocabSize, grammarField, bans.badTokenIds) ?? (await plan.constrain(answerThinking(reading)));
  const budget = thinkBudget(body.thinking_token_budget, s.tokenizer, s.options);
  const promptTop = promptLogprobsAsked(body.prompt_logprobs, body.stream);
  const stops = stopStrings(body, s.options);
  const skipSpecial = body.skip_special_tokens ?? s.options.skipSpecialTokens;
  // A JSON answer must parse as it stands (the openai SDK's parse() does), and a guided choice
  // must be one of the choices, so a think block (thinking on, or opened by the prompt) goes to
  // reasoning_content even where the conf's reasoning parser is off.
  const exactAnswer = format !== undefined && format.type !== 'text';
  const separateReasoning = s.options.reasoningParser || (reading.thinking && exactAnswer);
  const jobs: ChoiceJob[] = Array.from({ length: n }, (_, index) => ({
    index,
    submit: {
      tokens: prompt.ids,
      sampling: choiceSampling(sampling, index),
      maxTokens,
      ...stopTokens(s.stopTokenIds, body),
      minTokens: minTokens(body.min_tokens, maxTokens),
      logprobs,
      // One list for the prompt every choice shares: the first choice scores it.
      promptLogprobs: (promptTop !== undefined && index === 0) || undefined,
      promptTopLogprobs: promptTop,
      ...bans,
      logitBias: bias,
      cacheSalt: body.cache_salt ?? undefined,
      priority,
      thinkBudget: budget,
      constraint,
    },
    output: {
      stops,
      includeStop: body.include_stop_str_in_output ?? false,
      minTokens: body.min_tokens ?? 0,
      ...reading,
      separateReasoning,
      toolCalls: plan.parseCalls,
      forcedToolCall: plan.forced,
      singleToolCall: plan.singleToolCall,
    },
    decoder: s.decoder(skipSpecial),
  }));
  const beams = beamSearchAsked(body, n);
  if (beams) checkBeamJob(jobs[0], promptTop !== undefined, { budgetField: 'thinking_token_budget' });
  const meta: ResponseMeta = { id: s.newId('chatcmpl'), created: unixNow(), model: modelName, system_fingerprint: s.fingerprint };
  const returnIds = body.return_token_ids === true;
  // vLLM's echo: each answer starts with the final assistant message it continues.
  const echoed = echoedMessage(body.echo, body.messages);
  const view: ChatView = {
    reasoningField: separateReasoning,
    logprobs,
    tok: s.tokenizer,
    tokenIds: returnIds,
    eosTokenId: s.tokenizer.eosTokenId,
    tokenNaming: body.return_tokens_as_token_ids ? 'ids' : 'text',
    omitReasoning: body.include_reasoning === false,
  };

  const release = await admit(rc, priority);
  s.metrics.promptTokens.inc({}, promptTokens);
  const scope = requestScope(rc.signal);
  try {
    // With use_beam_search the answers are found first; each choice then replays its beam.
    const engines = beams ? await runBeamSearches(engine, jobs, beams, scope.signal) : undefined;
    const updates = () => mergeChoices(jobs.map((job, i) => runChoice(job, { engine: engines?.[i] ?? engine, metrics: s.metrics, arrival: rc.arrival, signal: scope.signal })));
    if (body.stream) await streamChat(rc, body, meta, view, promptTokens, updates(), n, { promptIds: returnIds ? prompt.ids : undefined, echoed });
    else {
      const acc = jobs.map((j) => new ChatChoiceAccumulator(j.index, view, echoed));
      let cached: number | undefined;
      let promptLp: PromptLogprobs | undefined;
      for await (const u of updates()) {
        if (u.index === 0 && u.cachedPromptTokens !== undefined) cached = u.cachedPromptTokens;
        if (u.index === 0 && u.promptLogprobs) promptLp = u.promptLogprobs;
        acc[u.index].add(u);
      }
      const usage = usageOf(promptTokens, acc.reduce((sum, a) => sum + a.completionTokens, 0), cached);
      const answer: Record<string, unknown> = chatResponse(meta, acc, usage);
      // vLLM's prompt_logprobs: one list for the prompt every choice shares.
      if (promptTop !== undefined) answer.prompt_logprobs = vllmPromptLogprobs(prompt.ids, promptLp, promptTop, s.tokenizer);
      if (returnIds) answer.prompt_token_ids = prompt.ids;
      sendJson(rc.res, 200, answer);
    }
  } finally {
    scope.abort('the request ended');
    release();
  }
}

async function streamChat(
  rc: RequestContext,
  body: ChatRequest,
  meta: ResponseMeta,
  view: ConstructorParameters<typeof ChatChunker>[1],
  promptTokens: number,
  updates: AsyncGenerator<ChoiceUpdate>,
  n: number,
  /** promptIds (return_token_ids): the first chunk carries them; echoed (echo): a chunk per choice after the role chunks. */
  opening: { promptIds?: readonly number[]; echoed: string },
): Promise<void> {
  // continuous_usage_stats (vLLM's): with include_usage, every chunk carries the usage so far
  // and the last one the total; alone it does nothing, as in vLLM.
  const withUsage = body.stream_options?.include_usage === true;
  const continuous = withUsage && body.stream_options?.continuous_usage_stats === true;
  const tokens = new Array<number>(n).fill(0);
  let cached: number | undefined;
  const usageNow = () => usageOf(promptTokens, tokens.reduce((a, b) => a + b, 0), cached);
  const chunker = new ChatChunker(meta, view, withUsage, continuous ? usageNow : undefined);
  const sse = new SseWriter(rc.res);
  for (let i = 0; i < n; i++) await sse.send(chunker.roleChunk(i, opening.promptIds));
  if (opening.echoed) for (let i = 0; i < n; i++) await sse.send(chunker.echoChunk(i, opening.echoed));
  const ok = await streamUpdates(sse, updates, async (u) => {
    tokens[u.index] = u.completionTokens;
    if (u.index === 0 && u.cachedPromptTokens !== undefined) cached = u.cachedPromptTokens;
    for (const chunk of chunker.updateChunks(u)) await sse.send(chunk);
  });
  if (!ok) return;
  if (withUsage) await sse.send(chunker.chunk([], usageNow()));
  sse.done();
}

export function usageOf(prompt: number, completion: number, cached?: number): Usage {
  const usage: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  if (cached !== undefined) usage.prompt_tokens_details = { cached_tokens: cached };
  return usage;
}

// Re-exported for the routes that import it from here.
export { extraKwargs } from '../openai/chat-render.js';
