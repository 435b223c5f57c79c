// POST /v1/messages (Anthropic's Messages API) and /v1/messages/count_tokens. A message is one
// chat turn on the same engine job as /v1/chat/completions; the answer comes back as content
// blocks (thinking, text, tool_use) or, streaming, as the events Anthropic's SDKs accumulate.
// A last assistant message is continued (Anthropic's prefill), as continue_final_message does.
import { chatToolChoice, chatTools, outputFormat, templateMessages, thinkingOn } from '../anthropic/messages-input.js';
import { MessageBuilder, messageId } from '../anthropic/messages-output.js';
import { anthropicEnvelope, messagesTokenBudget } from '../anthropic/errors.js';
import { countTokensSchema, messagesRequestSchema, type CountTokensRequest, type MessagesRequest } from '../anthropic/schema-messages.js';
import { badRequest, toApiError } from '../errors.js';
import { runChoice, type ChoiceJob } from '../generate.js';
import { sendJson } from '../http.js';
import { prefillPlan } from '../openai/chat-messages.js';
import { planTools, type ToolPlan } from '../openai/constraints.js';
import { samplingFor, stopStrings, thinkBudget } from '../openai/sampling.js';
import type { RequestContext } from '../router.js';
import type { ServerContext } from '../context.js';
import { SseWriter } from '../sse.js';
import { answerThinking, thinkReading } from '../think-reading.js';
import { admit, parseBody, requestScope } from './common.js';

/** The prompt a request renders: shared by messages and count_tokens, so the two always agree. */
async function renderPrompt(s: ServerContext, body: CountTokensRequest & Partial<Pick<MessagesRequest, 'output_config' | 'output_format'>>) {
  if (body.messages.length === 0) throw badRequest('messages: at least one message is required.', 'messages');
  // A last assistant turn with text is prefill: the model continues it.
  const { turns: messages, prefill } = prefillPlan(templateMessages(body));
  const thinking = thinkingOn(body.thinking, s.options.enableThinking);
  const { choice, parallel } = chatToolChoice(body.tool_choice);
  const formatField = body.output_format && !body.output_config?.format ? 'output_format' : 'output_config.format';
  const plan: ToolPlan = planTools(chatTools(body.tools), choice, outputFormat(body), s.constraints, parallel, formatField);
  const prompt = await s.render(messages, { addGenerationPrompt: !prefill, continueFinalMessage: prefill, enableThinking: thinking, tools: plan.tools });
  // A prefilled answer is already past its think block unless it opened one and left it open.
  const reading = thinkReading(thinking, prompt.text, prefill);
  // Compiled here, so that count_tokens refuses what messages would.
  const constraint = await plan.constrain(answerThinking(reading));
  return { prompt, plan, reading, constraint };
}

export async function createMessage(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, messagesRequestSchema);
  const s = rc.server;
  const { engine, name: modelName } = s.generatorFor(body.model);
  const { prompt, plan, reading, constraint } = await renderPrompt(s, body);
  const promptTokens = prompt.ids.length;
  const maxTokens = messagesTokenBudget(body.max_tokens, promptTokens, s.limits);
  const sampling = samplingFor(body, s.options);
  const job: ChoiceJob = {
    index: 0,
    submit: {
      tokens: prompt.ids,
      sampling,
      maxTokens,
      stopTokenIds: s.stopTokenIds,
      ignoreEos: false,
      ...s.bans,
      // budget_tokens bounds the think block as Anthropic's does: the model answers after it.
      thinkBudget: thinkBudget(body.thinking?.type === 'enabled' ? body.thinking.budget_tokens : undefined, s.tokenizer, s.options, 'thinking.budget_tokens'),
      constraint,
    },
    output: {
      stops: stopStrings({ stop: body.stop_sequences }, s.options),
      ...reading,
      separateReasoning: true,
      toolCalls: plan.parseCalls,
      forcedToolCall: plan.forced,
      singleToolCall: plan.singleToolCall,
    },
    decoder: s.decoder(s.options.skipSpecialTokens),
  };
  const id = messageId();
  const release = await admit(rc);
  s.metrics.promptTokens.inc({}, promptTokens);
  const scope = requestScope(rc.signal);
  const updates = runChoice(job, { engine, metrics: s.metrics, arrival: rc.arrival, signal: scope.signal });
  // Anthropic counts prompt tokens read from its cache apart from input_tokens.
  const usage = (outputTokens: number, cached: number) => ({
    input_tokens: promptTokens - cached,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
    output_tokens: outputTokens,
  });
  const message = (builder: MessageBuilder | undefined, cached: number) => ({
    id,
    type: 'message',
    role: 'assistant',
    model: modelName,
    content: builder?.content ?? [],
    stop_reason: builder ? builder.stopReason : null,
    stop_sequence: builder ? builder.stopSequence : null,
    usage: usage(builder?.outputTokens ?? 0, cached),
  });
  try {
    let cached = 0;
    if (!body.stream) {
      const builder = new MessageBuilder();
      for await (const u of updates) {
        if (u.cachedPromptTokens !== undefined) cached = u.cachedPromptTokens;
        await builder.add(u);
      }
      await builder.finish();
      sendJson(rc.res, 200, message(builder, cached));
      return;
    }
    const sse = new SseWriter(rc.res);
    const emit = (type: string, data: Record<string, unknown>) => sse.event(type, data);
    const builder = new MessageBuilder(emit);
    // The stream opens at once; message_start waits for the engine's first update, which says
    // how much of the prompt the prefix cache held, so its usage is the one message_delta and a
    // non-streamed answer report (clients read input and cache tokens from message_start).
    sse.start();
    let started = false;
    const start = async () => {
      if (started) return;
      started = true;
      await emit('message_start', { type: 'message_start', message: message(undefined, cached) });
      // As Anthropic's own streams do: proxies and clients that watch for idle streams see it alive.
      await emit('ping', { type: 'ping' });
    };
    try {
      for await (const u of updates) {
        if (u.cachedPromptTokens !== undefined) cached = u.cachedPromptTokens;
        await start();
        await builder.add(u);
      }
    } catch (err) {
      // The status line is sent: the failure travels as Anthropic's error event, with the id its
      // request-id header gave (a client that logs the event alone can still quote it).
      const id = rc.res.getHeader('request-id');
      await emit('error', anthropicEnvelope(toApiError(err), typeof id === 'string' ? id : undefined));
      sse.close();
      return;
    }
    await start();
    await builder.finish();
    await emit('message_delta', { type: 'message_delta', delta: { stop_reason: builder.stopReason, stop_sequence: builder.stopSequence }, usage: usage(builder.outputTokens, cached) });
    await emit('message_stop', { type: 'message_stop' });
    sse.close();
  } finally {
    scope.abort('the request ended');
    release();
  }
}

export async function countTokens(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, countTokensSchema);
  rc.server.checkModel(body.model);
  sendJson(rc.res, 200, { input_tokens: (await renderPrompt(rc.server, body)).prompt.ids.length });
}
