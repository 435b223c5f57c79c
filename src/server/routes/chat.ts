// POST /v1/chat/completions: messages -> template -> n engine submits -> message or SSE chunks.
import { badRequest } from '../errors.js';
import { mergeChoices, runChoice, type ChoiceJob, type ChoiceUpdate } from '../generate.js';
import { sendJson } from '../http.js';
import { ChatChoiceAccumulator, ChatChunker, chatResponse, type ResponseMeta, type Usage } from '../openai/chat-mapping.js';
import { toTemplateMessages } from '../openai/chat-messages.js';
import { planTools } from '../openai/constraints.js';
import { checkStreamOptions, checkTokenIds, stopTokens, choiceSampling, logitBias, minTokens, samplingFor, stopStrings, thinkBudget, tokenBudget } from '../openai/sampling.js';
import { chatRequestSchema, type ChatRequest } from '../openai/schema-chat.js';
import { answerFormat } from '../openai/vllm-fields.js';
import type { RequestContext } from '../router.js';
import { SseWriter } from '../sse.js';
import { admit, parseBody, requestScope, unixNow } from './common.js';
import { streamUpdates } from './stream.js';
import { thinkingKwarg } from './tokenize.js';

export async function chatCompletions(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, chatRequestSchema);
  const s = rc.server;
  s.checkModel(body.model);
  checkStreamOptions(body);
  const engine = s.requireEngine();
  const thinking = body.enable_thinking ?? thinkingKwarg(body.chat_template_kwargs) ?? s.options.enableThinking;
  const format = answerFormat(body);
  const plan = planTools(body.tools, body.tool_choice, format, thinking, s.constraints, body.parallel_tool_calls);
  const continueFinal = body.continue_final_message ?? false;
  if (continueFinal) {
    if (body.messages[body.messages.length - 1].role !== 'assistant')
      throw badRequest('continue_final_message needs the last message to be from the assistant.', 'continue_final_message');
    if (body.add_generation_prompt === true)
      throw badRequest('continue_final_message and add_generation_prompt cannot both be true; leave add_generation_prompt out.', 'add_generation_prompt');
  }
  const prompt = s.render(toTemplateMessages(body.messages), {
    continueFinalMessage: continueFinal,
    addGenerationPrompt: body.add_generation_prompt ?? !continueFinal,
    enableThinking: thinking,
    tools: plan.tools,
    kwargs: extraKwargs(body.chat_template_kwargs),
  });
  const promptTokens = prompt.ids.length;
  const maxTokens = tokenBudget(body.max_completion_tokens ?? body.max_tokens, promptTokens, s.limits, 'messages', 'max_tokens', s.options.defaultMaxTokens);
  if (body.top_logprobs != null && !body.logprobs) throw badRequest('top_logprobs needs "logprobs": true.', 'top_logprobs');
  const logprobs = body.logprobs ? (body.top_logprobs ?? 0) : undefined;
  const sampling = samplingFor(body, s.options);
  checkTokenIds(body.stop_token_ids ?? [], s.tokenizer.vocabSize, 'stop_token_ids');
  const bias = logitBias(body, s.tokenizer.vocabSize);
  const budget = thinkBudget(body.thinking_token_budget, s.tokenizer, s.options);
  const stops = stopStrings(body, s.options);
  const skipSpecial = body.skip_special_tokens ?? s.options.skipSpecialTokens;
  const n = body.n ?? 1;
  // A JSON answer must parse as it stands (the openai SDK's parse() does), and a guided choice
  // must be one of the choices, so with thinking on the think block goes to reasoning_content
  // even where the conf's reasoning parser is off.
  const exactAnswer = format !== undefined && format.type !== 'text';
  const separateReasoning = s.options.reasoningParser || (thinking && exactAnswer);
  const jobs: ChoiceJob[] = Array.from({ length: n }, (_, index) => ({
    index,
    submit: {
      tokens: prompt.ids,
      sampling: choiceSampling(sampling, index),
      maxTokens,
      ...stopTokens(s.stopTokenIds, body),
      minTokens: minTokens(body.min_tokens, maxTokens),
      logprobs,
      badTokenIds: s.badTokenIds,
      logitBias: bias,
      thinkBudget: budget,
      constraint: plan.constraint,
    },
    output: {
      stops,
      includeStop: body.include_stop_str_in_output ?? false,
      minTokens: body.min_tokens ?? 0,
      thinking,
      startInReasoning: thinking && endsInsideThink(prompt.text),
      separateReasoning,
      toolCalls: plan.parseCalls,
      forcedToolCall: plan.forced,
    },
    decoder: s.decoder(skipSpecial),
  }));
  const meta: ResponseMeta = { id: s.newId('chatcmpl'), created: unixNow(), model: s.options.modelId, system_fingerprint: s.fingerprint };
  const view = { reasoningField: separateReasoning, logprobs, tok: s.tokenizer };

  const release = await admit(rc);
  s.metrics.promptTokens.inc({}, promptTokens);
  const scope = requestScope(rc.signal);
  const updates = () => mergeChoices(jobs.map((job) => runChoice(job, { engine, metrics: s.metrics, arrival: rc.arrival, signal: scope.signal })));
  try {
    if (body.stream) await streamChat(rc, body, meta, view, promptTokens, updates(), n);
    else {
      const acc = jobs.map((j) => new ChatChoiceAccumulator(j.index, view));
      let cached: number | undefined;
      for await (const u of updates()) {
        if (u.index === 0 && u.cachedPromptTokens !== undefined) cached = u.cachedPromptTokens;
        acc[u.index].add(u);
      }
      const usage = usageOf(promptTokens, acc.reduce((sum, a) => sum + a.completionTokens, 0), cached);
      sendJson(rc.res, 200, chatResponse(meta, acc, usage));
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
): Promise<void> {
  const withUsage = body.stream_options?.include_usage === true;
  const chunker = new ChatChunker(meta, view, withUsage);
  const sse = new SseWriter(rc.res);
  for (let i = 0; i < n; i++) await sse.send(chunker.roleChunk(i));
  const tokens = new Array<number>(n).fill(0);
  let cached: number | undefined;
  const ok = await streamUpdates(sse, updates, async (u) => {
    tokens[u.index] = u.completionTokens;
    if (u.index === 0 && u.cachedPromptTokens !== undefined) cached = u.cachedPromptTokens;
    for (const chunk of chunker.updateChunks(u)) await sse.send(chunk);
  });
  if (!ok) return;
  if (withUsage) await sse.send(chunker.chunk([], usageOf(promptTokens, tokens.reduce((a, b) => a + b, 0), cached)));
  sse.done();
}

export function usageOf(prompt: number, completion: number, cached?: number): Usage {
  const usage: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  if (cached !== undefined) usage.prompt_tokens_details = { cached_tokens: cached };
  return usage;
}

/** chat_template_kwargs other than enable_thinking (which has its own path) go to the template as is. */
export function extraKwargs(kwargs: Record<string, unknown> | null | undefined): Record<string, unknown> | undefined {
  if (!kwargs) return undefined;
  const { enable_thinking: _, ...rest } = kwargs;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

/** The prompt opened a think block in the answer being written and did not close it. */
export function endsInsideThink(prompt: string): boolean {
  const open = prompt.lastIndexOf('<think>');
  return open > prompt.lastIndexOf('</think>') && open > prompt.lastIndexOf('<|im_start|>');
}
