// Numbers read from GRPST_* environment variables. Unset or empty means the default; anything
// else must be what the variable takes, or it is refused naming the variable, the value and what
// it takes (exit 2), as GRPST_CPU_KERNELS is: a typo silently replaced by the default would look
// like a setting that does not work.
import { badInput } from './errors.js';

export interface EnvNumberRule {
  /** What the variable takes, in words: "a number of seconds above 0". */
  takes: string;
  /** The default, in words: "600 s". */
  default: string;
  /** An example of a valid value. */
  example: string;
  integer?: boolean;
}

/** The variable's value, or undefined when it is unset or empty; above 0, whole when `integer`. */
export function positiveEnvNumber(env: NodeJS.ProcessEnv, name: string, rule: EnvNumberRule): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  const ok = /^\s*[0-9.eE+]+\s*$/.test(raw) && Number.isFinite(n) && n > 0 && (!rule.integer || Number.isSafeInteger(n));
  if (ok) return n;
  throw badInput(`${name} is set to ${JSON.stringify(raw)}, which is not ${rule.takes}`, `set ${name} to ${rule.takes} (e.g. ${name}=${rule.example}), or unset it for the default (${rule.default})`);
}
