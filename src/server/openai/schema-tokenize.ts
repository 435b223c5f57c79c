// vLLM's /tokenize and /detokenize bodies.
import { z } from 'zod';
import { chatRequestSchema } from './schema-chat.js';

const chatShape = chatRequestSchema.shape;

export const tokenizeRequestSchema = z.union([
  z.object({
    model: z.string().nullish(),
    prompt: z.string(),
    add_special_tokens: z.boolean().nullish(),
    return_token_strs: z.boolean().nullish(),
  }),
  z.object({
    model: z.string().nullish(),
    messages: chatShape.messages,
    tools: chatShape.tools,
    // Every field that shapes chat's prompt (chat-render.ts), so the count is the one chat generates from.
    add_generation_prompt: z.boolean().nullish(),
    continue_final_message: chatShape.continue_final_message,
    add_special_tokens: z.boolean().nullish(),
    enable_thinking: chatShape.enable_thinking,
    chat_template_kwargs: chatShape.chat_template_kwargs,
    reasoning_effort: chatShape.reasoning_effort,
    documents: chatShape.documents,
    chat_template: chatShape.chat_template,
    return_token_strs: z.boolean().nullish(),
  }),
], { error: 'send "prompt" (a string) or "messages" (a chat)' });
export type TokenizeRequest = z.infer<typeof tokenizeRequestSchema>;

export const detokenizeRequestSchema = z.object({
  model: z.string().nullish(),
  tokens: z.array(z.number().int().min(0)),
});
