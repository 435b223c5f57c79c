// Option parsers shared by the lifecycle commands: numbers are checked where they are read, so a
// typo gets a clear error instead of NaN deep inside.
import { InvalidArgumentError } from 'commander';

export function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} takes a whole number of at least 1, got "${value}"`);
    return n;
  };
}

export function positiveSeconds(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} takes seconds (a number above 0), got "${value}"`);
    return n;
  };
}
