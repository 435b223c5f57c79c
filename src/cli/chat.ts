// `grpst chat [NAME]`: an interactive, streaming chat with a running server, for quick checks
// over ssh; `grpst chat --model_dir DIR|OWNER/NAME` serves the model for the session itself
// (chat-local.ts), as `ollama run` does. The server is found through the lifecycle state (name ->
// host and port), or is the one at --url; its API key comes from --api_key, GRPST_API_KEY or the
// deployed server conf. Thinking is shown dimmed and kept out of the history; Ctrl-C stops an
// answer, Ctrl-C at the prompt (or Ctrl-D) leaves.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import path from 'node:path';
import { defaultName } from '../config/paths.js';
import { badInput } from '../util/errors.js';
import { booleanOrWord, positiveInt, serverTargetOptions, switchValue, wholeNumber, type NotABoolean } from './options.js';

/** Commander keeps the seed-style snake_case flag names as they are. */
interface ChatFlags {
  url?: string;
  api_key?: string;
  system?: string;
  enable_thinking?: boolean | NotABoolean;
  max_tokens?: number;
  thinking_budget?: number;
  temperature?: number;
  model?: string;
  model_dir?: string;
}

export function register(program: Command): void {
  serverTargetOptions(
    program.command('chat').description('chat in the terminal with a running server, or with --model_dir DIR|OWNER/NAME served for the session (streaming; thinking shown dimmed)'),
    'chat with the server at this address instead (e.g. http://127.0.0.1:9997: a foreground grpst serve, or a remote one)',
  )
    .option('--model_dir <dir>', 'chat with this model, served here for the session: an engine or checkpoint folder, or a Hugging Face id (pulled when not cached), as `ollama run MODEL`')
    .option('--model <name>', "the model to chat with, as the server lists it (GET /v1/models: its names and its LoRA adapters; default: the first)")
    .option('--system <text>', 'system prompt')
    .option('--enable_thinking [bool]', 'thinking on (bare, or true) or off (false) (default: the server conf)', booleanOrWord)
    .option('--max_tokens <n>', 'longest answer in tokens', positiveInt('--max_tokens'))
    .option('--thinking_budget <n>', "most tokens of thinking before the model answers (default: the server's)", wholeNumber('--thinking_budget'))
    .option('--temperature <t>', "sampling temperature (default: the server's, from its conf or the checkpoint's generation_config.json)", temperatureArg)
    .action(async (given: string, flags: ChatFlags, command: Command) => {
      const { name, enableThinking } = placeSwitchWord(given, flags.enable_thinking, command);
      // The session's modules load only when a chat starts, so the rest of the CLI starts fast.
      const [{ chatLoop }, { locate, locateUrl }] = await Promise.all([import('./chat-session.js'), import('./server-target.js')]);
      const session = { system: flags.system, enableThinking, maxTokens: flags.max_tokens, thinkingBudget: flags.thinking_budget, temperature: flags.temperature };
      if (flags.model_dir !== undefined) {
        if (flags.url !== undefined || command.args.length > 0) {
          throw badInput('--model_dir starts a model for this chat; a server name or --url names one already running', 'pass one: grpst chat --model_dir DIR, or grpst chat NAME / --url URL');
        }
        return chatWithLocalModel(flags.model_dir, flags, session);
      }
      const target = flags.url !== undefined ? await locateUrl(flags.url, flags.api_key, flags.model) : await locate(name, flags.api_key, flags.model);
      await chatLoop(target, session);
    });
}

/** The session's own server: started, chatted with, stopped whatever way the chat ends. */
async function chatWithLocalModel(modelDir: string, flags: ChatFlags, session: Parameters<typeof import('./chat-session.js').chatLoop>[1]): Promise<void> {
  const [{ chatLoop }, { locateUrl }, { startLocalServer }, { hubModelFolder }, { createProgress }] = await Promise.all([
    import('./chat-session.js'),
    import('./server-target.js'),
    import('./chat-local.js'),
    import('./hub-model.js'),
    import('./progress.js'),
  ]);
  const folder = path.resolve(await hubModelFolder(modelDir, '--model_dir'));
  const progress = createProgress();
  const server = await startLocalServer(folder, (text) => progress.step(text)).catch((e) => {
    progress.fail('');
    throw e;
  });
  // A Ctrl-C or SIGTERM while the model loads or between answers still stops the server.
  const onSignal = () => void server.stop().then(() => process.exit(143));
  process.once('SIGTERM', onSignal);
  try {
    progress.succeed(`serving ${folder} on ${server.url} (pid ${server.pid}) for this chat`);
    const target = await locateUrl(server.url, flags.api_key, flags.model);
    await chatLoop(target, session);
  } finally {
    process.off('SIGTERM', onSignal);
    await server.stop();
  }
}

/**
 * `grpst chat --enable_thinking my_grps`: the bare switch took the server name as its value.
 * Given back to the name when no name followed; any other word is refused by the flag's name.
 */
function placeSwitchWord(given: string, value: boolean | NotABoolean | undefined, command: Command): { name: string; enableThinking?: boolean } {
  const nameGiven = command.args.length > 0;
  // --enable_thinking=WORD gave the word as the value on purpose (commander keeps the argv it parsed as rawArgs, untyped).
  const asValue = typeof value === 'object' && ((command.parent as { rawArgs?: string[] } | null)?.rawArgs ?? []).includes(`--enable_thinking=${value.notABoolean}`);
  if (typeof value === 'object' && !nameGiven && !asValue && given === defaultName) return { name: value.notABoolean, enableThinking: true };
  return { name: given, enableThinking: switchValue('--enable_thinking', value) };
}

function temperatureArg(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 2) throw new InvalidArgumentError(`--temperature takes a number from 0 to 2, got "${value}"`);
  return n;
}
