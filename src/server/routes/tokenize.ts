// POST /tokenize and /detokenize with vLLM's shapes: {prompt | messages} -> {tokens, count,
// max_model_len}; {tokens} -> {prompt}.
import { sendJson } from '../http.js';
import { toTemplateMessages, toTemplateTools } from '../openai/chat-messages.js';
import { chatRenderOptions, chatThinking } from '../openai/chat-render.js';
import { checkTokenIds } from '../openai/sampling.js';
import { detokenizeRequestSchema, tokenizeRequestSchema } from '../openai/schema-tokenize.js';
import { tokenText } from '../openai/logprobs.js';
import type { RequestContext } from '../router.js';
import { parseBody } from './common.js';

export async function tokenize(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, tokenizeRequestSchema);
  const s = rc.server;
  s.checkModel(body.model);
  let ids: number[];
  if ('messages' in body) {
    // Rendered as chat renders it (chat-render.ts), so the count is chat's prompt_tokens.
    const thinking = chatThinking(body, s.options.enableThinking);
    ids = (await s.render(toTemplateMessages(body.messages), chatRenderOptions(body, { thinking, tools: toTemplateTools(body.tools), template: s.served.template, requestTemplates: s.served.requestTemplates }))).ids;
  } else {
    // Qwen3 adds no BOS/EOS, so add_special_tokens changes nothing; special tokens in the text are recognized.
    ids = await s.texts.encode(body.prompt);
  }
  const out: Record<string, unknown> = { count: ids.length, max_model_len: s.engine ? s.limits.maxSeqLen : null, tokens: ids };
  if (body.return_token_strs) out.token_strs = ids.map((id) => tokenText(s.tokenizer, id));
  sendJson(rc.res, 200, out);
}

export async function detokenize(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, detokenizeRequestSchema);
  const s = rc.server;
  s.checkModel(body.model);
  checkTokenIds(body.tokens, s.tokenizer.vocabSize, 'tokens');
  sendJson(rc.res, 200, { prompt: s.tokenizer.decode(body.tokens) });
}

// Re-exported for the routes that import it from here.
export { thinkingKwarg } from '../openai/chat-render.js';
