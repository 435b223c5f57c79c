// `grpst chat [NAME]`: an interactive, streaming chat with a running server, for quick checks
// over ssh. The server is found through the lifecycle state (name -> host and port), or is the
// one at --url; its API key comes from --api_key, GRPST_API_KEY or the deployed server conf. Thinking is shown dimmed and
// kept out of the history; Ctrl-C stops an answer, Ctrl-C at the prompt (or Ctrl-D) leaves.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { defaultName } from '../config/paths.js';
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
}

export function register(program: Command): void {
  serverTargetOptions(
    program.command('chat').description('chat with a running server in the terminal (streaming; thinking shown dimmed)'),
    'chat with the server at this address instead (e.g. http://127.0.0.1:9997: a foreground grpst serve, or a remote one)',
  )
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
      const target = flags.url !== undefined ? await locateUrl(flags.url, flags.api_key, flags.model) : await locate(name, flags.api_key, flags.model);
      await chatLoop(target, { system: flags.system, enableThinking, maxTokens: flags.max_tokens, thinkingBudget: flags.thinking_budget, temperature: flags.temperature });
    });
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
