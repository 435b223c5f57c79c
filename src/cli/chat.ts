// `grpst chat [NAME]`: an interactive, streaming chat with a running server, for quick checks
// over ssh. The server is found through the lifecycle state (name -> host and port), or is the
// one at --url; its API key comes from --api_key, GRPST_API_KEY or the deployed server conf. Thinking is shown dimmed and
// kept out of the history; Ctrl-C stops an answer, Ctrl-C at the prompt (or Ctrl-D) leaves.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { positiveInt, serverTargetOptions, wholeNumber } from './options.js';

/** Commander keeps the seed-style snake_case flag names as they are. */
interface ChatFlags {
  url?: string;
  api_key?: string;
  system?: string;
  enable_thinking?: boolean;
  max_tokens?: number;
  thinking_budget?: number;
  temperature?: number;
}

export function register(program: Command): void {
  serverTargetOptions(
    program.command('chat').description('chat with a running server in the terminal (streaming; thinking shown dimmed)'),
    'chat with the server at this address instead (e.g. http://127.0.0.1:9997: a foreground grpst serve, or a remote one)',
  )
    .option('--system <text>', 'system prompt')
    .option('--enable_thinking <bool>', 'thinking on or off (default: the server conf)', booleanArg('--enable_thinking'))
    .option('--max_tokens <n>', 'longest answer in tokens', positiveInt('--max_tokens'))
    .option('--thinking_budget <n>', "most tokens of thinking before the model answers (default: the server's)", wholeNumber('--thinking_budget'))
    .option('--temperature <t>', "sampling temperature (default: the server's, from its conf or the checkpoint's generation_config.json)", temperatureArg)
    .action(async (name: string, flags: ChatFlags) => {
      // The session's modules load only when a chat starts, so the rest of the CLI starts fast.
      const [{ chatLoop }, { locate, locateUrl }] = await Promise.all([import('./chat-session.js'), import('./server-target.js')]);
      const target = flags.url !== undefined ? await locateUrl(flags.url, flags.api_key) : await locate(name, flags.api_key);
      await chatLoop(target, { system: flags.system, enableThinking: flags.enable_thinking, maxTokens: flags.max_tokens, thinkingBudget: flags.thinking_budget, temperature: flags.temperature });
    });
}

function booleanArg(flag: string) {
  return (value: string): boolean => {
    if (/^(true|1|on|yes)$/i.test(value)) return true;
    if (/^(false|0|off|no)$/i.test(value)) return false;
    throw new InvalidArgumentError(`${flag} takes true or false, got "${value}"`);
  };
}

function temperatureArg(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 2) throw new InvalidArgumentError(`--temperature takes a number from 0 to 2, got "${value}"`);
  return n;
}
