// POST /v1/responses (OpenAI's Responses API), GET and DELETE /v1/responses/{id}, and GET
// /v1/responses/{id}/input_items. A response is
// one chat turn: its input items become template messages, it runs through the same engine job
// as /v1/chat/completions, and the answer comes back as output items (reasoning, message,
// function calls) or, streaming, as the typed events the openai SDKs read.
import { ApiError, badRequest, responseNotFound, toApiError } from '../errors.js';
import { runChoice, type ChoiceJob, type ChoiceUpdate } from '../generate.js';
import { sendJson, sendText } from '../http.js';
import type { TemplateMessage } from '../openai/chat-messages.js';
import { planTools } from '../openai/constraints.js';
import { inputItemsPage, inputItemsQuery, storedInputItems } from '../openai/responses-input-items.js';
import { chatToolsAndChoice, inputMessages, refuseUnsupportedResponseFields, responseThinking, textAnswerFormat } from '../openai/responses-input.js';
import { ResponseOutputBuilder, type EventSink, type OutputItem } from '../openai/responses-output.js';
import { fitHistory } from '../openai/responses-truncation.js';
import { checkTokenIds, leavesRoom, logitBias, minTokens, samplingFor, stopStrings, stopTokens, thinkBudget, tokenBudget } from '../openai/sampling.js';
import { responsesRequestSchema, type ResponsesRequest } from '../openai/schema-responses.js';
import { requestPriority } from '../openai/vllm-fields.js';
import type { RequestContext } from '../router.js';
import { SseWriter } from '../sse.js';
import { answerThinking, thinkReading } from '../think-reading.js';
import { extraKwargs } from './chat.js';
import { admit, parseBody, requestScope, unixNow } from './common.js';
import { thinkingKwarg } from './tokenize.js';

export async function createResponse(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, responsesRequestSchema);
  const s = rc.server;
  refuseUnsupportedResponseFields(body);
  const { engine, name: modelName } = s.generatorFor(body.model);
  const priority = requestPriority(body.priority, engine.info.schedulingPolicy);
  const previous = body.previous_response_id != null ? s.responses.get(body.previous_response_id) : undefined;
  if (body.previous_response_id != null && !previous) throw previousNotFound(body.previous_response_id);
  const history = [...(previous?.conversation ?? []), ...inputMessages(body.input)];
  if (history.length === 0) throw badRequest('input is empty: send a string or at least one input item.', 'input');
  const inputItems = storedInputItems(body.input);
  const thinking = responseThinking(body, thinkingKwarg(body.chat_template_kwargs), s.options.enableThinking);
  const { tools, choice } = chatToolsAndChoice(body.tools, body.tool_choice);
  const plan = planTools(tools, choice, textAnswerFormat(body.text?.format), s.constraints, body.parallel_tool_calls, 'text.format');
  const render = (turns: readonly TemplateMessage[]) =>
    s.render(body.instructions ? [{ role: 'system', content: body.instructions }, ...turns] : [...turns], {
      addGenerationPrompt: true,
      enableThinking: thinking,
      tools: plan.tools,
      kwargs: extraKwargs(body.chat_template_kwargs),
    });
  const prompt = body.truncation === 'auto' ? (await fitHistory(history, render, (p) => leavesRoom(p.ids.length, body.max_output_tokens, s.limits))).prompt : await render(history);
  const reading = thinkReading(thinking, prompt.text, false);
  const promptTokens = prompt.ids.length;
  const maxTokens = tokenBudget(body.max_output_tokens, promptTokens, s.limits, 'input', 'max_output_tokens', s.options.defaultMaxTokens);
  const logprobs = body.include?.includes('message.output_text.logprobs') ? (body.top_logprobs ?? 0) : undefined;
  const sampling = samplingFor(body, s.options);
  checkTokenIds(body.stop_token_ids ?? [], s.tokenizer.vocabSize, 'stop_token_ids');
  const job: ChoiceJob = {
    index: 0,
    submit: {
      tokens: prompt.ids,
      sampling,
      maxTokens,
      ...stopTokens(s.stopTokenIds, body),
      minTokens: minTokens(body.min_tokens, maxTokens),
      logprobs,
      ...s.bans,
      logitBias: logitBias(body, s.tokenizer.vocabSize),
      thinkBudget: thinkBudget(body.thinking_token_budget, s.tokenizer, s.options),
      priority,
      constraint: await plan.constrain(answerThinking(reading)),
    },
    output: {
      stops: stopStrings(body, s.options),
      minTokens: body.min_tokens ?? 0,
      ...reading,
      // Reasoning has its own output item here, whatever the conf's reasoning parser says.
      separateReasoning: true,
      toolCalls: plan.parseCalls,
      forcedToolCall: plan.forced,
      singleToolCall: plan.singleToolCall,
    },
    decoder: s.decoder(body.skip_special_tokens ?? s.options.skipSpecialTokens),
  };
  const store = body.store ?? true;
  const base = responseBase(body, s.newId('resp'), modelName, sampling.temperature, sampling.topP, store);
  const view = { logprobs, tok: s.tokenizer };

  const release = await admit(rc, priority);
  s.metrics.promptTokens.inc({}, promptTokens);
  const scope = requestScope(rc.signal);
  const updates = runChoice(job, { engine, metrics: s.metrics, arrival: rc.arrival, signal: scope.signal });
  // Serialized once, and kept so that a client may chain the next turn on it.
  const finish = (builder: ResponseOutputBuilder) => {
    const response = completed(base, builder, usage(promptTokens, builder));
    const json = JSON.stringify(response);
    if (store) s.responses.put(base.id, { json, conversation: [...history, answerTurn(builder.output)], inputItems });
    return { response, json };
  };
  try {
    if (body.stream) await streamResponse(rc, base, view, updates, (b) => finish(b).response);
    else {
      const builder = new ResponseOutputBuilder(view);
      for await (const u of updates) await builder.add(u);
      await builder.finish();
      sendText(rc.res, 200, finish(builder).json, 'application/json');
    }
  } finally {
    scope.abort('the request ended');
    release();
  }
}

type Base = ReturnType<typeof responseBase>;

async function streamResponse(
  rc: RequestContext,
  base: Base,
  view: ConstructorParameters<typeof ResponseOutputBuilder>[0],
  updates: AsyncGenerator<ChoiceUpdate>,
  finish: (b: ResponseOutputBuilder) => Record<string, unknown>,
): Promise<void> {
  const sse = new SseWriter(rc.res);
  let sequence = 0;
  const emit: EventSink = (type, payload) => sse.event(type, { type, sequence_number: sequence++, ...payload });
  const builder = new ResponseOutputBuilder(view, emit);
  const pending = { ...base, status: 'in_progress', output: [], usage: null };
  await emit('response.created', { response: pending });
  await emit('response.in_progress', { response: pending });
  try {
    for await (const u of updates) await builder.add(u);
  } catch (err) {
    // After the stream began the status line is sent: the failure travels as the terminal event.
    const e = toApiError(err);
    await emit('response.failed', { response: { ...base, status: 'failed', output: builder.output, error: { code: e.code ?? 'server_error', message: e.message }, usage: null } });
    sse.close();
    return;
  }
  await builder.finish();
  const response = finish(builder);
  await emit(response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response });
  sse.close();
}

/** The fields every form of this response carries (in progress, failed, completed). */
function responseBase(body: ResponsesRequest, id: string, model: string, temperature: number, topP: number, store: boolean) {
  return {
    id,
    object: 'response' as const,
    created_at: unixNow(),
    model,
    error: null as { code: string; message: string } | null,
    incomplete_details: null as { reason: string } | null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    metadata: body.metadata ?? {},
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: body.reasoning?.summary ?? null },
    store,
    temperature,
    text: { format: body.text?.format ?? { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: topP,
    top_logprobs: body.top_logprobs ?? 0,
    truncation: body.truncation ?? 'disabled',
    background: false,
    service_tier: body.service_tier != null ? 'default' : undefined,
    prompt_cache_key: body.prompt_cache_key ?? null,
    prompt_cache_retention: body.prompt_cache_retention ?? null,
    max_tool_calls: body.max_tool_calls ?? null,
    safety_identifier: body.safety_identifier ?? null,
    user: body.user ?? undefined,
  };
}

function completed(base: Base, builder: ResponseOutputBuilder, used: ReturnType<typeof usage>): Record<string, unknown> {
  const cut = builder.finishReason === 'length';
  return {
    ...base,
    status: cut ? 'incomplete' : 'completed',
    // OpenAI sets it on completed responses only.
    completed_at: cut ? null : unixNow(),
    incomplete_details: cut ? { reason: 'max_output_tokens' } : null,
    output: builder.output,
    usage: used,
  };
}

function usage(input: number, b: ResponseOutputBuilder) {
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: b.cachedPromptTokens },
    output_tokens: b.completionTokens,
    // What the model wrote inside its think block.
    output_tokens_details: { reasoning_tokens: Math.min(b.reasoningTokens, b.completionTokens) },
    total_tokens: input + b.completionTokens,
  };
}

/** The answer as the assistant turn a chained response's prompt holds. */
function answerTurn(output: readonly OutputItem[]): TemplateMessage {
  const turn: TemplateMessage = { role: 'assistant', content: '' };
  for (const item of output) {
    if (item.type === 'reasoning') turn.reasoning_content = (turn.reasoning_content ?? '') + item.content.map((c) => c.text).join('');
    else if (item.type === 'message') turn.content += item.content.map((c) => c.text).join('');
    else (turn.tool_calls ??= []).push({ id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } });
  }
  return turn;
}

/**
 * A previous_response_id this server does not hold: 400 with OpenAI's code for it, which clients
 * that chain turns read to resend the whole conversation instead.
 */
function previousNotFound(id: string): ApiError {
  const kept = "Responses are kept in this server's memory while it runs (the most recent ones, and only those created with store left on)";
  return new ApiError(400, `Previous response with id '${id}' not found. ${kept}; send the whole input instead of previous_response_id.`, {
    param: 'previous_response_id',
    code: 'previous_response_not_found',
  });
}

export async function getResponse(rc: RequestContext): Promise<void> {
  const stored = rc.server.responses.get(rc.param ?? '');
  if (!stored) throw responseNotFound(rc.param ?? '');
  sendText(rc.res, 200, stored.json, 'application/json');
}

/** GET /v1/responses/{id}/input_items: one page of the items the response was created from. */
export async function listInputItems(rc: RequestContext): Promise<void> {
  const query = inputItemsQuery(rc.req.url);
  const stored = rc.server.responses.get(rc.param ?? '');
  if (!stored) throw responseNotFound(rc.param ?? '');
  sendText(rc.res, 200, inputItemsPage(stored.inputItems, query), 'application/json');
}

export async function deleteResponse(rc: RequestContext): Promise<void> {
  const id = rc.param ?? '';
  if (!rc.server.responses.delete(id)) throw responseNotFound(id);
  sendJson(rc.res, 200, { id, object: 'response.deleted', deleted: true });
}
