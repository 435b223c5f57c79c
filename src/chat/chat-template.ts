// The checkpoint's own Jinja chat template, rendered with Hugging Face's semantics
// (apply_chat_template with tokenize=False): the same variables, trim_blocks/lstrip_blocks, and
// tojson as json.dumps(ensure_ascii=False) with ", " and ": " separators, numbers as Python writes them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { badInput } from '../util/errors.js';
import { usePythonFloats, withPythonNumbers } from './jinja-numbers.js';
import { usePythonStringMethods } from './jinja-strings.js';
import { readTokenizerConfig, tokenContent, type TokenizerConfigJson } from './tokenizer-files.js';

/** A function tool as OpenAI's API and Hugging Face templates take it. */
export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; [key: string]: unknown };
  [key: string]: unknown;
}

export interface ChatToolCall {
  id?: string;
  type?: 'function';
  /** Arguments as a JSON string (OpenAI) or an object; the Qwen3 template writes a string as is and an object with tojson. */
  function: { name: string; arguments: string | Record<string, unknown> };
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | (string & {});
  content: string | null;
  reasoning_content?: string | null;
  tool_calls?: ChatToolCall[];
  tool_call_id?: string;
  name?: string;
  [key: string]: unknown;
}

export interface RenderOptions {
  /** End with the assistant header so the model answers. Default false, as in transformers. */
  addGenerationPrompt?: boolean;
  /** Qwen3: false makes the template open and close an empty think block. Undefined: not passed. */
  enableThinking?: boolean;
  tools?: ChatTool[];
  /** Further template variables (chat_template_kwargs). */
  kwargs?: Record<string, unknown>;
  /** The values hold PythonNumber markers (jinja-numbers.ts) for numbers written as the client wrote them. */
  pythonNumbers?: boolean;
}

export class ChatTemplate {
  private readonly template: Template;
  /** Special-token variables transformers hands every template (bos_token, eos_token, ...). */
  private readonly specialTokens: Record<string, string>;

  constructor(
    readonly source: string,
    private readonly config: TokenizerConfigJson = {},
  ) {
    usePythonStringMethods();
    usePythonFloats();
    try {
      this.template = new Template(source);
    } catch (e) {
      throw badInput(`the chat template does not parse: ${(e as Error).message}`, 'use the chat_template of a Hugging Face checkpoint');
    }
    this.specialTokens = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
      const content = tokenContent(config[key] as TokenizerConfigJson['eos_token']);
      if (content !== undefined) this.specialTokens[key] = content;
    }
  }

  /** Another template for the same tokenizer (its special-token variables): a request's own chat_template. */
  withSource(source: string): ChatTemplate {
    return new ChatTemplate(source, this.config);
  }

  /**
   * The template of a checkpoint or engine folder: chat_template.jinja when present (transformers
   * saves it there), else chat_template in tokenizer_config.json.
   */
  static fromDir(dir: string): ChatTemplate {
    const config = readTokenizerConfig(dir);
    const jinjaFile = join(dir, 'chat_template.jinja');
    if (existsSync(jinjaFile)) return new ChatTemplate(readFileSync(jinjaFile, 'utf8'), config);
    let source = config.chat_template;
    if (Array.isArray(source)) source = source.find((t) => t.name === 'default')?.template;
    if (typeof source !== 'string' || source.length === 0) {
      throw badInput(
        `${join(dir, 'tokenizer_config.json')} has no chat_template`,
        'copy tokenizer_config.json (or chat_template.jinja) of an instruct checkpoint into the folder',
      );
    }
    return new ChatTemplate(source, config);
  }

  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    const context: Record<string, unknown> = {
      ...this.specialTokens,
      ...opts.kwargs,
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    };
    if (opts.tools !== undefined) context.tools = opts.tools;
    if (opts.enableThinking !== undefined) context.enable_thinking = opts.enableThinking;
    try {
      return opts.pythonNumbers ? withPythonNumbers(() => this.template.render(context)) : this.template.render(context);
    } catch (e) {
      throw badInput(`the chat template failed on these messages: ${(e as Error).message}`, 'check the roles and contents of the messages');
    }
  }
}
