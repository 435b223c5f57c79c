// POST /tokenize and /detokenize with vLLM's shapes: {prompt | messages} -> {tokens, count,
// max_model_len}; {tokens} -> {prompt}.
import { badRequest } from '../errors.js';
import { sendJson } from '../http.js';
import { toTemplateMessages, toTemplateTools } from '../openai/chat-messages.js';
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
    const thinking = body.enable_thinking ?? thinkingKwarg(body.chat_template_kwargs) ?? s.options.enableThinking;
    ids = s.render(toTemplateMessages(body.messages), {
      addGenerationPrompt: body.add_generation_prompt ?? true,
      enableThinking: thinking,
      tools: toTemplateTools(body.tools),
    }).ids;
  } else {
    // Qwen3 adds no BOS/EOS, so add_special_tokens changes nothing; special tokens in the text are recognized.
    ids = s.tokenizer.encode(body.prompt);
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

export function thinkingKwarg(kwargs: Record<string, unknown> | null | undefined): boolean | undefined {
  const v = kwargs?.enable_thinking;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badRequest('chat_template_kwargs.enable_thinking must be true or false.', 'chat_template_kwargs.enable_thinking');
  return v;
}
