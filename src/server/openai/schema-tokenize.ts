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
    add_generation_prompt: z.boolean().nullish(),
    add_special_tokens: z.boolean().nullish(),
    enable_thinking: chatShape.enable_thinking,
    chat_template_kwargs: chatShape.chat_template_kwargs,
    return_token_strs: z.boolean().nullish(),
  }),
], { error: 'send "prompt" (a string) or "messages" (a chat)' });
export type TokenizeRequest = z.infer<typeof tokenizeRequestSchema>;

export const detokenizeRequestSchema = z.object({
  model: z.string().nullish(),
  tokens: z.array(z.number().int().min(0)),
});
