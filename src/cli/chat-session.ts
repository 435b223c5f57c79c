// The session behind `grpst chat` (cli/chat.ts): given the server (server-target.ts), reads
// messages from the terminal and streams the answers, thinking dimmed.
import readline from 'node:readline';
import { request } from 'undici';
import { envVars } from '../config/paths.js';
import { ReasoningSplitter } from '../parse/reasoning.js';
import { MessageReader } from './chat-input.js';
import { authHeaders, type Target } from './server-target.js';
import { errorText, GrpstError } from '../util/errors.js';
import { summarizeAnswer } from '../util/http-answer.js';

export interface ChatOptions {
  system?: string;
  enableThinking?: boolean;
  maxTokens?: number;
  /** thinking_token_budget: the think block's most tokens. */
  thinkingBudget?: number;
  temperature?: number;
}

interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

// Ollama's names work too (/bye, /clear, /set think|nothink, /?): its users type them by habit,
// and an exit command taken for a message would send the rest of a piped script to the model.
const help = `Type a message and press Enter (a pasted block is one message; """ begins and ends one of several lines). Commands:
  /think on|off   thinking for the next answers (enable_thinking; /set think|nothink too)
  /reset          forget the conversation (/clear too)
  /exit           leave (/bye, or Ctrl-D); Ctrl-C stops an answer, or clears a line being typed`;

/** ANSI dim for thinking, only on a terminal that wants colour (NO_COLOR respected, FORCE_COLOR honoured). */
function useColor(stream: NodeJS.WriteStream): boolean {
  if (process.env.NO_COLOR) return false;
  if (process.env.FORCE_COLOR && process.env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true;
}

/**
 * Where the chat writes: the answers on stdout, and everything around them (the banner, thinking,
 * the stats, command replies, errors) beside them on a terminal, but on stderr when stdout is a
 * pipe or a file, as `ollama run` does: `echo hi | grpst chat > answer.txt` keeps only the answer.
 */
interface ChatOutput {
  answer: (s: string) => void;
  note: (s: string) => void;
  /** Ends the line each stream is in the middle of (an answer cut by an error, a think block). */
  endLines: () => void;
  dim: (s: string) => string;
  /** Notes and answers share stdout (a terminal). */
  shared: boolean;
}

function chatOutput(): ChatOutput {
  const notes = process.stdout.isTTY ? process.stdout : process.stderr;
  const color = useColor(notes);
  const open = new Map<NodeJS.WriteStream, boolean>();
  const write = (stream: NodeJS.WriteStream, s: string) => {
    stream.write(s);
    // A colour code alone neither opens nor ends a line.
    const visible = s.replace(/\x1b\[[0-9;]*m/g, '');
    if (visible !== '') open.set(stream, !visible.endsWith('\n'));
  };
  return {
    answer: (s) => write(process.stdout, s),
    note: (s) => write(notes, s),
    endLines: () => {
      for (const [stream, isOpen] of open) if (isOpen) write(stream, '\n');
    },
    dim: (s) => (color ? `\x1b[2m${s}\x1b[22m` : s),
    shared: notes === process.stdout,
  };
}

export async function chatLoop(target: Target, opts: ChatOptions): Promise<void> {
  const io = chatOutput();
  const { dim } = io;
  const out = io.note;
  const interactive = process.stdin.isTTY === true;
  // The prompt and the echo of typed keys belong on the terminal: with stdout piped
  // (`grpst chat | tee log`) they go to stderr's terminal, so the pipe gets no cursor codes and
  // the keys typed still show.
  const terminal = !interactive ? undefined : process.stdout.isTTY ? process.stdout : process.stderr.isTTY ? process.stderr : undefined;
  let thinking = opts.enableThinking;
  let history: Message[] = [];
  let turns = 0;
  let failedTurns = 0;
  // The way out of a conversation past the model's context is said once, not at every turn.
  let contextHintShown = false;

  const who = target.name === target.baseUrl ? `model ${target.model} at ${target.baseUrl}` : `${target.name} (model ${target.model} at ${target.baseUrl})`;
  out(dim(`chatting with ${who}; /help for commands\n`));
  const rl = readline.createInterface({ input: process.stdin, output: terminal, terminal: terminal !== undefined });
  let current: AbortController | undefined;
  // Ctrl-C: readline reports it on a terminal; with piped input it arrives as a signal.
  const onInterrupt = () => {
    if (current) current.abort();
    else rl.close();
  };
  // Ctrl-C on a half-typed line clears it (as Ollama and a shell do) rather than leaving the chat.
  rl.on('SIGINT', () => {
    if (current || rl.line === '') return onInterrupt();
    rl.write(null, { ctrl: true, name: 'u' }); // deletes up to the cursor
    rl.write(null, { ctrl: true, name: 'k' }); // and after it
  });
  process.on('SIGINT', onInterrupt);
  const reader = new MessageReader(rl, interactive);
  const prompt = () => {
    if (interactive) reader.prompt();
  };
  rl.setPrompt('> ');
  prompt();
  for (let raw = await reader.next(); raw !== null; raw = await reader.next()) {
    const line = raw.trim();
    if (line === '') {
      prompt();
      continue;
    }
    if (line.startsWith('/')) {
      const [cmd, arg] = line.split(/\s+/, 2);
      if (cmd === '/exit' || cmd === '/quit' || cmd === '/bye') break;
      const think = cmd === '/think' ? arg : cmd === '/set' ? { think: 'on', nothink: 'off' }[arg ?? ''] : undefined;
      if (cmd === '/reset' || cmd === '/clear') {
        history = [];
        contextHintShown = false;
        out(dim('conversation forgotten\n'));
      } else if (think === 'on' || think === 'off') {
        thinking = think === 'on';
        out(dim(`thinking ${think}\n`));
      } else if (cmd === '/help' || cmd === '/?') {
        out(`${help}\n`);
      } else {
        out(`unknown command ${line}; /help lists them\n`);
      }
      prompt();
      continue;
    }
    // Leading indentation is kept (pasted code); only the trailing blank is dropped.
    history.push({ role: 'user', content: raw.trimEnd() });
    current = new AbortController();
    turns++;
    const resumeRedraws = holdPromptRedraws(terminal);
    try {
      const answer = await streamAnswer(target, { ...opts, enableThinking: thinking }, history, current.signal, io);
      history.push({ role: 'assistant', content: answer });
    } catch (err) {
      // The turn failed: forget the question so the next one is not sent after an unanswered one.
      history.pop();
      failedTurns++;
      if (err instanceof ServerRefusal && err.code === 'context_length_exceeded' && history.length > 0) {
        // Earlier turns make up the prompt: forgetting them is the way on, and saying so once is enough.
        io.endLines();
        out(contextHintShown ? `error: the conversation is still past the model's context (refused again)\n` : `error: ${err.message}\n  fix: /reset starts over (the conversation so far no longer fits the model's context)\n`);
        contextHintShown = true;
      } else {
        io.endLines();
        out(`error: ${turnError(err, target)}\n`);
      }
    } finally {
      current = undefined;
      resumeRedraws();
    }
    prompt();
  }
  rl.close();
  process.off('SIGINT', onInterrupt);
  // Piped input is a script: a turn that got no answer must show in the exit status.
  if (!interactive && failedTurns > 0) {
    process.stderr.write(`${failedTurns} of ${turns} ${turns === 1 ? 'turn' : 'turns'} failed\n`);
    process.exitCode = 1;
  }
}

/**
 * readline redraws its prompt line on every terminal resize; during an answer that would erase
 * the line being streamed and write `> ` into it. Its resize listeners are put back once the
 * answer ends, and the next prompt is drawn at the new width anyway.
 */
function holdPromptRedraws(terminal: NodeJS.WriteStream | undefined): () => void {
  const listeners = terminal?.listeners('resize') ?? [];
  for (const l of listeners) terminal!.off('resize', l as () => void);
  return () => {
    for (const l of listeners) terminal!.on('resize', l as () => void);
  };
}

/** A failed turn in words: a connection lost or refused is the server going away, said with how to check. */
function turnError(err: unknown, target: Target): string {
  const code = (err as { code?: string }).code ?? '';
  const lost = ['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'EPIPE'].includes(code) || /other side closed/.test(String((err as Error).message));
  if (!lost) return errorText(err);
  if (target.name === target.baseUrl) return `the server at ${target.baseUrl} went away (${(err as Error).message})`;
  return `the server ${target.name} went away (${(err as Error).message}); \`grpst ps\` shows whether it runs, \`grpst logs ${target.name}\` why it stopped`;
}

/** Streams one answer to the terminal and returns its content without the think block. */
async function streamAnswer(
  target: Target,
  opts: ChatOptions,
  history: Message[],
  signal: AbortSignal,
  { answer: say, note, endLines, dim, shared }: ChatOutput,
): Promise<string> {
  const messages = opts.system ? [{ role: 'system', content: opts.system }, ...history] : history;
  const body: Record<string, unknown> = { model: target.model, messages, stream: true, stream_options: { include_usage: true } };
  if (opts.enableThinking !== undefined) body.enable_thinking = opts.enableThinking;
  if (opts.maxTokens !== undefined) body.max_tokens = opts.maxTokens;
  if (opts.thinkingBudget !== undefined) body.thinking_token_budget = opts.thinkingBudget;
  if (opts.temperature !== undefined) body.temperature = opts.temperature;

  const begin = performance.now();
  const splitter = new ReasoningSplitter();
  let answer = '';
  let inThink = false;
  let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
  let finish: string | undefined;
  let lastShown = '';
  // Dim from the start of the think block to its end, one escape pair for the whole block.
  const [dimOn, dimOff] = dim('\0').split('\0');
  const reasoning = (raw: string) => {
    const text = inThink ? raw : raw.replace(/^\s+/, '');
    if (!text) return;
    if (!inThink) note(`${dimOn}thinking: `);
    inThink = true;
    note(text);
    lastShown = text;
  };
  const endThink = () => {
    if (!inThink) return;
    inThink = false;
    note(dimOff);
  };
  const content = (raw: string) => {
    // The blank lines between `</think>` and the answer are not part of it.
    const text = answer === '' ? raw.replace(/^\s+/, '') : raw;
    if (!text) return;
    if (inThink) {
      endThink();
      // On one terminal a blank line parts the thinking from the answer; on stderr it only ends.
      if (shared) note(lastShown.endsWith('\n') ? '\n' : '\n\n');
      else endLines();
    }
    answer += text;
    say(text);
  };
  const take = (segments: ReturnType<ReasoningSplitter['push']>) => {
    for (const s of segments) {
      if (s.kind === 'reasoning') reasoning(s.text);
      else if (s.kind === 'content') content(s.text);
    }
  };

  let stopped = false;
  try {
    for await (const chunk of sseChunks(`${target.baseUrl}/v1/chat/completions`, body, target.apiKey, signal)) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      if (choice.delta?.reasoning_content) reasoning(choice.delta.reasoning_content);
      if (choice.delta?.content) take(splitter.push(choice.delta.content));
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  } catch (err) {
    if (!signal.aborted) {
      endThink(); // the terminal must not stay dim after the error
      throw err;
    }
    stopped = true;
  }
  take(splitter.finish());
  endThink();
  const seconds = (performance.now() - begin) / 1000;
  const cut = finish === 'length' ? (opts.maxTokens !== undefined ? 'cut at max_tokens' : "cut at the server's length limit") : '';
  const notes = [stopped ? 'stopped' : '', usage ? `prompt ${usage.prompt_tokens} tokens, answer ${usage.completion_tokens} tokens, ${(usage.completion_tokens / seconds).toFixed(1)} tokens/s` : '', cut];
  // Every turn leaves one line-ended answer on stdout, an empty one too (a script reading the
  // answers keeps count); the stats follow as a note.
  if (!answer.endsWith('\n')) say('\n');
  endLines();
  note(`${dim(`(${notes.filter(Boolean).join(', ')})`)}\n`);
  return answer;
}

/** A request the server answered with an error status; `code` is its envelope's (context_length_exceeded...). */
class ServerRefusal extends GrpstError {
  constructor(
    message: string,
    readonly code: string | undefined,
    hint: string | undefined,
  ) {
    super(message, { hint });
  }
}

interface StreamChunk {
  choices?: { delta?: { content?: string; reasoning_content?: string }; finish_reason?: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number };
  error?: { message?: string };
}

/**
 * The JSON payloads of an SSE response, until [DONE]; an error envelope or frame is thrown. A
 * stream that ends without [DONE] and before any choice had its finish_reason was cut short (a
 * proxy's timeout, a server restart): a clean close reads just like the end of the answer, so
 * without this a half answer would pass for a whole one. A finish_reason is taken as the end
 * without [DONE], since nothing of the answer is missing then.
 */
async function* sseChunks(url: string, body: unknown, apiKey: string | undefined, signal: AbortSignal): AsyncGenerator<StreamChunk> {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeaders(apiKey) }, body: JSON.stringify(body), signal });
  if (res.statusCode !== 200) {
    const answer = summarizeAnswer(res.headers['content-type'], await res.body.text());
    throw new ServerRefusal(`the server answered ${res.statusCode}: ${answer.text}`, answer.code, res.statusCode === 401 ? `pass --api_key KEY or set ${envVars.apiKey}` : undefined);
  }
  const decoder = new TextDecoder();
  let buf = '';
  let finished = false;
  for await (const bytes of res.body) {
    buf += decoder.decode(bytes as Uint8Array, { stream: true });
    let end: number;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = frame
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart())
        .join('\n');
      if (data === '') continue;
      if (data === '[DONE]') return;
      const chunk = JSON.parse(data) as StreamChunk;
      if (chunk.error) throw new GrpstError(`the server reported: ${chunk.error.message ?? 'an error'}`);
      if (chunk.choices?.some((c) => c.finish_reason)) finished = true;
      yield chunk;
    }
  }
  // A last frame without its blank line still counts when it is the end marker.
  if (finished || /^data:\s*\[DONE\]$/.test(buf.trim())) return;
  throw new GrpstError('the answer was cut off: the connection closed before the server finished it');
}
