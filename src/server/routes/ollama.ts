// POST /api/chat and /api/generate (Ollama's API). A chat turn or a generation is one engine job,
// as on /v1/chat/completions; the answer comes back as Ollama writes it: streamed by default as
// NDJSON lines (message.content / thinking / tool_calls, or response), the last one done: true
// with done_reason and the statistics; or, with "stream": false, as one object.
import { badRequest, toApiError } from '../errors.js';
import { runChoice, type ChoiceJob, type ChoiceUpdate } from '../generate.js';
import { sendJson } from '../http.js';
import { prefillPlan, type TemplateMessage } from '../openai/chat-messages.js';
import { chatLogprobs, type ChatTokenLogprob } from '../openai/logprobs.js';
import { planTools, type ToolPlan } from '../openai/constraints.js';
import { thinkBudget } from '../openai/sampling.js';
import { ollamaEnvelope } from '../ollama/errors.js';
import { answerBudget, answerFormat, imagesRefused, ollamaLogprobs, sampling, stops, templateMessages, thinkingOn } from '../ollama/input.js';
import { checkOllamaModel } from '../ollama/models.js';
import { NdjsonWriter } from '../ollama/ndjson.js';
import { chatMessage, generateFields, TurnBuilder, type TurnDelta } from '../ollama/output.js';
import { chatRequestSchema, generateRequestSchema, type OllamaOptions } from '../ollama/schema.js';
import type { OutputOptions } from '../../parse/output.js';
import type { RequestContext } from '../router.js';
import { answerThinking, thinkReading } from '../think-reading.js';
import { admit, parseBody, requestScope } from './common.js';

export async function ollamaChat(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, chatRequestSchema);
  const s = rc.server;
  checkOllamaModel(s, body.model);
  const logprobs = ollamaLogprobs(body);
  s.requireEngine();
  const messages = body.messages ?? [];
  // No messages: Ollama's way to load a model. It is loaded while the server runs.
  if (messages.length === 0) return loaded(rc, body.model, body.keep_alive, { message: { role: 'assistant', content: '' } });
  const thinking = thinkingOn(body.think, s.options.enableThinking);
  const plan = planTools(body.tools, undefined, answerFormat(body.format), s.constraints, undefined, 'format');
  // A last assistant turn with text is continued (unless it already ended in tool calls), as Ollama does.
  const { turns, prefill } = prefillPlan(templateMessages(messages));
  const prompt = await s.render(turns, { addGenerationPrompt: !prefill, continueFinalMessage: prefill, enableThinking: thinking, tools: plan.tools });
  const reading = thinkReading(thinking, prompt.text, prefill);
  await runTurn(rc, { model: body.model, prompt, plan, reading, options: body.options, stream: body.stream ?? true, promptParam: 'messages', fields: (d) => ({ message: chatMessage(d) }), logprobs });
}

export async function ollamaGenerate(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, generateRequestSchema);
  const s = rc.server;
  checkOllamaModel(s, body.model);
  const logprobs = ollamaLogprobs(body);
  if (body.template)
    throw badRequest('template is not supported: prompts are rendered with the checkpoint\'s own chat template. Leave template out, or send the whole prompt with "raw": true.', 'template', 'unsupported_parameter');
  if (body.suffix) throw badRequest('suffix (fill-in-the-middle) is not supported; leave it out.', 'suffix', 'unsupported_parameter');
  if (body.images && body.images.length > 0) throw imagesRefused('images');
  if (body.context && body.context.length > 0)
    throw badRequest('context is not supported: this server returns no context to send back. Send the conversation as messages to /api/chat.', 'context', 'unsupported_parameter');
  s.requireEngine();
  const text = body.prompt ?? '';
  if (text === '') return loaded(rc, body.model, body.keep_alive, { response: '' });
  // Raw prompts skip the template, so thinking is whatever the prompt says; think only asks that a think block be read apart.
  const thinking = body.raw ? body.think != null && body.think !== false : thinkingOn(body.think, s.options.enableThinking);
  const plan = planTools(undefined, undefined, answerFormat(body.format), s.constraints, undefined, 'format');
  let prompt: { text: string; ids: number[] };
  if (body.raw) prompt = { text, ids: await s.texts.encode(text) };
  else {
    const turns: TemplateMessage[] = body.system ? [{ role: 'system', content: body.system }] : [];
    turns.push({ role: 'user', content: text });
    prompt = await s.render(turns, { addGenerationPrompt: true, enableThinking: thinking });
  }
  // A raw prompt's think block is read apart only where think asks for it; its tags are the
  // client's own text, as a continued turn's are.
  const reading = body.raw && !thinking ? { thinking, startInReasoning: false } : thinkReading(thinking, prompt.text, body.raw === true);
  await runTurn(rc, { model: body.model, prompt, plan, reading, options: body.options, stream: body.stream ?? true, promptParam: 'prompt', fields: generateFields, logprobs });
}

/**
 * A load request's answer, done at once: done_reason "load", or "unload" for keep_alive 0 (the
 * model stays loaded: it is loaded while the server runs).
 */
function loaded(rc: RequestContext, model: string, keepAlive: string | number | null | undefined, fields: Record<string, unknown>): void {
  const unload = keepAlive === 0 || (typeof keepAlive === 'string' && /^0+(\.0*)?[a-z]*$/.test(keepAlive.trim()));
  sendJson(rc.res, 200, { model, created_at: new Date().toISOString(), ...fields, done: true, done_reason: unload ? 'unload' : 'load' });
}

interface Turn {
  /** The name the request sent: Ollama echoes it in every answer. */
  model: string;
  prompt: { text: string; ids: number[] };
  plan: ToolPlan;
  /** How the output is read for its think block (thinkReading). */
  reading: Pick<OutputOptions, 'thinking' | 'startInReasoning'>;
  options: OllamaOptions | null | undefined;
  stream: boolean;
  /** The request field the prompt came from, for errors that name it. */
  promptParam: string;
  /** /api/chat's message or /api/generate's response fields, for some text of the answer. */
  fields: (d: TurnDelta) => Record<string, unknown>;
  /** logprobs asked for, with this many alternatives per token. */
  logprobs?: number;
}

async function runTurn(rc: RequestContext, t: Turn): Promise<void> {
  const s = rc.server;
  const engine = s.requireGenerator();
  const promptTokens = t.prompt.ids.length;
  const job: ChoiceJob = {
    index: 0,
    submit: {
      tokens: t.prompt.ids,
      sampling: sampling(t.options, s),
      maxTokens: answerBudget(t.options?.num_predict, promptTokens, s.limits, t.promptParam, s.options.defaultMaxTokens),
      stopTokenIds: s.stopTokenIds,
      ignoreEos: false,
      logprobs: t.logprobs,
      ...s.bans,
      thinkBudget: thinkBudget(undefined, s.tokenizer, s.options),
      constraint: await t.plan.constrain(answerThinking(t.reading)),
    },
    output: {
      stops: stops(t.options, s),
      ...t.reading,
      // Ollama always hands the think block back apart, in thinking.
      separateReasoning: true,
      toolCalls: t.plan.parseCalls,
      forcedToolCall: t.plan.forced,
    },
    decoder: s.decoder(s.options.skipSpecialTokens),
  };
  const release = await admit(rc);
  const builder = new TurnBuilder(rc.arrival, performance.now(), promptTokens);
  // Each line carries its tokens' logprobs, as Ollama's do (the entries of OpenAI's chat logprobs,
  // empty lists left out as Ollama's omitempty leaves them).
  const withLogprobs = (entries: ChoiceUpdate['logprobs']) =>
    t.logprobs === undefined ? {} : { logprobs: chatLogprobs(s.tokenizer, entries, t.logprobs).map(ollamaLogprob) };
  const all: ChoiceUpdate['logprobs'] = [];
  s.metrics.promptTokens.inc({}, promptTokens);
  const scope = requestScope(rc.signal);
  const updates = runChoice(job, { engine, metrics: s.metrics, arrival: rc.arrival, signal: scope.signal });
  const head = () => ({ model: t.model, created_at: new Date().toISOString() });
  const end = () => ({ done: true, done_reason: builder.doneReason, ...builder.stats() });
  try {
    if (!t.stream) {
      for await (const u of updates) {
        builder.add(u);
        all.push(...u.logprobs);
      }
      sendJson(rc.res, 200, { ...head(), ...t.fields({ content: builder.content, thinking: builder.thinking, toolCalls: builder.toolCalls }), ...withLogprobs(all), ...end() });
      return;
    }
    const out = new NdjsonWriter(rc.res);
    try {
      for await (const u of updates) {
        const d = builder.add(u);
        all.push(...u.logprobs);
        if (d.content.length > 0 || d.thinking.length > 0 || d.toolCalls.length > 0) {
          await out.line({ ...head(), ...t.fields(d), ...withLogprobs(all), done: false });
          all.length = 0;
        }
      }
    } catch (err) {
      // Before the first line the router answers with the error's own status.
      if (!out.isStarted) throw err;
      // After it, the failure travels as a line of its own, which Ollama's clients raise.
      await out.line(ollamaEnvelope(toApiError(err)));
      out.end();
      return;
    }
    // The last line carries no text, as Ollama's does: only done, done_reason and the statistics.
    await out.line({ ...head(), ...t.fields({ content: '', thinking: '', toolCalls: [] }), ...(all.length > 0 ? withLogprobs(all) : {}), ...end() });
    out.end();
  } finally {
    scope.abort('the request ended');
    release();
  }
}

/** Ollama's Logprob: `bytes` and `top_logprobs` are omitted when empty (its Go fields are omitempty). */
function ollamaLogprob(e: ChatTokenLogprob): Record<string, unknown> {
  const { bytes, top_logprobs: top, ...rest } = e;
  return {
    ...rest,
    ...(bytes.length > 0 ? { bytes } : {}),
    ...(top.length > 0 ? { top_logprobs: top.map(({ bytes: b, ...t }) => ({ ...t, ...(b.length > 0 ? { bytes: b } : {}) })) } : {}),
  };
}
