// Replays recorded model outputs through the real server. The random-weight fixtures never write
// a think block, a tool call or markdown by themselves; with this in front of the real engine a
// prompt whose latest user turn contains a rule's text gets the rule's reply (tokenized by the real tokenizer, as
// the model would have produced it), and every other prompt goes to the real engine.
import type { ChatTemplate } from '../../src/chat/chat-template.js';
import type { Tokenizer } from '../../src/chat/tokenizer.js';
import type { EngineInfo, EngineStats, GenerationEngine, SubmitRequest, TokenEvent } from '../../src/engine/types.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions, type ServerOptions } from '../../src/server/options.js';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { loadTiny, type TinyModel } from './server-harness.js';

export interface ScriptRule {
  /** Applies when the latest user turn of the rendered prompt contains this text. */
  whenPromptHas: string;
  /** The recorded output, special tokens (<think>, <tool_call>) written as text. */
  reply: string;
}

export interface ScriptOptions {
  /** Tokens per event and the pause between events, so streaming is visible to a client. */
  tokensPerEvent?: number;
  delayMs?: number;
}

const imEnd = 151645;

export class ScriptedEngine implements GenerationEngine {
  /** Prompts that matched a rule, decoded, in arrival order. */
  readonly matched: { rule: ScriptRule; prompt: string }[] = [];
  /** Every prompt, decoded, in arrival order (the real engine's too). */
  readonly prompts: string[] = [];
  /** Every request as the server submitted it, in arrival order. */
  readonly requests: SubmitRequest[] = [];

  constructor(
    private readonly real: GenerationEngine,
    private readonly tokenizer: Tokenizer,
    private readonly rules: ScriptRule[],
    private readonly opts: ScriptOptions = {},
  ) {}

  get info(): EngineInfo {
    return this.real.info;
  }

  stats(): EngineStats {
    return this.real.stats();
  }

  close(): Promise<void> {
    return this.real.close();
  }

  submit(req: SubmitRequest): AsyncIterable<TokenEvent> {
    const prompt = this.tokenizer.decode(Array.from(req.tokens));
    this.prompts.push(prompt);
    this.requests.push(req);
    // Only the latest user turn (tool results included) counts: earlier turns of the history
    // must not trigger their old replies. The last rule that matches wins.
    const latest = prompt.slice(Math.max(0, prompt.lastIndexOf('<|im_start|>user')));
    const rule = [...this.rules].reverse().find((r) => latest.includes(r.whenPromptHas));
    if (!rule) return this.real.submit(req);
    this.matched.push({ rule, prompt });
    return this.replay(this.tokenizer.encode(rule.reply), req);
  }

  private async *replay(ids: number[], req: SubmitRequest): AsyncGenerator<TokenEvent> {
    const per = this.opts.tokensPerEvent ?? 1;
    const delay = this.opts.delayMs ?? 0;
    const limit = Math.min(ids.length, req.maxTokens);
    for (let at = 0; at < limit; at += per) {
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      if (req.signal?.aborted) {
        yield { tokens: [], finishReason: 'cancelled' };
        return;
      }
      const tokens = ids.slice(at, Math.min(at + per, limit));
      yield at === 0 ? { tokens, cachedPromptTokens: 0 } : { tokens };
    }
    yield limit < ids.length ? { tokens: [], finishReason: 'length' } : { tokens: [], finishReason: 'stop', stopTokenId: imEnd };
  }
}

/**
 * tiny-a behind a ScriptedEngine with no rules (every prompt reaches the real engine, and the
 * wrapper records what it was sent), served with the structured-output compiler: for tests that
 * read the prompts a route hands the engine. Close with closeRecordingServer.
 */
export async function startRecordingServer(overrides: Partial<ServerOptions> = {}): Promise<{ model: TinyModel; engine: ScriptedEngine; server: RunningServer }> {
  const model = await loadTiny('tiny-a');
  const engine = new ScriptedEngine(model.engine, model.tokenizer, []);
  const constraints = new ServerConstraintCompiler(model.tokenizer, { buildDeadlineMs: 60_000 });
  const server = await startServer({ engine, tokenizer: model.tokenizer, template: model.template, constraints }, { ...defaultServerOptions, host: '127.0.0.1', port: 0, ...overrides });
  return { model, engine, server };
}

export async function closeRecordingServer(parts: { model?: TinyModel; server?: RunningServer }): Promise<void> {
  await parts.server?.close();
  await parts.model?.engine.close();
}

/**
 * The tiny checkpoints' Qwen3 template with the generation prompt of the Qwen3 *-Thinking-2507
 * checkpoints: it opens the think block itself (`<|im_start|>assistant\n<think>\n`) whatever
 * enable_thinking says, so the model writes only the block's end.
 */
export function openingThinkTemplate(template: ChatTemplate): ChatTemplate {
  const tail = /\{%- if add_generation_prompt %\}[\s\S]*$/;
  if (!tail.test(template.source)) throw new Error('the template has no add_generation_prompt block at its end');
  return template.withSource(template.source.replace(tail, "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n<think>\\n' }}\n{%- endif %}\n"));
}

/**
 * The same model served twice on free ports: without the reasoning parser (a think block stays
 * inline in the content) and with it (reasoning_content): the two readings the think-open tests compare.
 */
export async function inlineAndParsedServers(
  deps: Parameters<typeof startServer>[0],
  options: ServerOptions,
): Promise<{ inline: RunningServer; parsed: RunningServer }> {
  const inline = await startServer(deps, options);
  const parsed = await startServer(deps, { ...options, reasoningParser: true });
  return { inline, parsed };
}
