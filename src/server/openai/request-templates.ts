// A request's own chat_template (vLLM's, which it renders only behind --trust-request-chat-template;
// here trust_request_chat_template in the inference conf): compiled for the model's tokenizer, the
// last few kept, so a client that sends the same template with every request compiles it once.
// Off by default: a template is a program, and one that loops for long holds a request slot.
import type { ChatTemplate } from '../../chat/chat-template.js';
import { badRequest } from '../errors.js';

export class RequestTemplates {
  private readonly compiled = new Map<string, ChatTemplate>();

  constructor(
    private readonly model: ChatTemplate,
    private readonly keep = 16,
  ) {}

  get(source: string): ChatTemplate {
    const hit = this.compiled.get(source);
    if (hit) {
      // Most recently used last: the first key is the one to drop.
      this.compiled.delete(source);
      this.compiled.set(source, hit);
      return hit;
    }
    let template: ChatTemplate;
    try {
      template = this.model.withSource(source);
    } catch (e) {
      throw badRequest(`chat_template does not parse: ${(e as Error).message.replace(/^the chat template does not parse: /, '')}. Send a Jinja template, as Hugging Face tokenizers hold them.`, 'chat_template');
    }
    this.compiled.set(source, template);
    if (this.compiled.size > this.keep) this.compiled.delete(this.compiled.keys().next().value!);
    return template;
  }
}
