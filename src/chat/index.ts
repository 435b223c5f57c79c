// Text side of serving: tokenizer, streaming detokenizer, chat template, safe prompt building.
export { Tokenizer, type EncodeOptions, type DecodeOptions } from './tokenizer.js';
export { IncrementalDecoder, type IncrementalDecoderOptions } from './incremental-decoder.js';
export { ChatTemplate, type ChatMessage, type ChatTool, type ChatToolCall, type RenderOptions } from './chat-template.js';
export { renderPrompt, renderPromptText, type Prompt, type PromptOptions, type InputMessage, type ContentPart } from './render-prompt.js';
export type { ShieldedRanges } from './added-tokens.js';
