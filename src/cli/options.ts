// Option parsers shared by the lifecycle commands: numbers are checked where they are read, so a
// typo gets a clear error instead of NaN deep inside.
import { InvalidArgumentError, type Command } from 'commander';
import { defaultName, envVars } from '../config/paths.js';
import { badInput } from '../util/errors.js';

export function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} takes a whole number of at least 1, got "${value}"`);
    return n;
  };
}

/** A count where 0 means none (`grpst logs -n 0`, as `tail -n 0`). */
export function wholeNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${flag} takes a whole number (0 or more), got "${value}"`);
    return n;
  };
}

/** A number above 0 of `what` (seconds, requests a second): the refusal names the flag and the unit. */
export function positiveNumber(flag: string, what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} takes ${what} (a number above 0), got "${value}"`);
    return n;
  };
}

export function positiveSeconds(flag: string) {
  return positiveNumber(flag, 'seconds');
}

/** The options of the commands that talk to a running server (chat, bench): which one, and its key. */
export function serverTargetOptions(command: Command, urlHelp: string): Command {
  return command
    .argument('[name]', 'server name (see grpst ps)', defaultName)
    .option('--url <url>', urlHelp)
    .option('--api_key <key>', `API key (default: ${envVars.apiKey}, or for a named server the key in its deployed server conf)`);
}

/** A value after a switch that is no true/false word: chat's server name (`grpst chat --enable_thinking my_grps`). */
export interface NotABoolean {
  notABoolean: string;
}

/**
 * A switch that also takes a value (`--enable_thinking`, `--enable_thinking false`,
 * `--enable_thinking=false`), registered as `--flag [bool]`: bare, commander makes it true. A word
 * that is no boolean is handed back for the command to place (a positional that followed the
 * switch) or refuse.
 */
export function booleanOrWord(value: string): boolean | NotABoolean {
  if (/^(true|1|on|yes)$/i.test(value)) return true;
  if (/^(false|0|off|no)$/i.test(value)) return false;
  return { notABoolean: value };
}

/** The switch's value; a stray word is refused by `flag`'s name. */
export function switchValue(flag: string, value: boolean | NotABoolean | undefined): boolean | undefined {
  if (typeof value === 'object') throw badInput(`${flag} takes true or false, got "${value.notABoolean}"`, `pass ${flag} (on), ${flag} true or ${flag} false`);
  return value;
}
