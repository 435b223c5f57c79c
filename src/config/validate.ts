// Turns zod issues into messages that name the file, the line, the key path and what is allowed,
// and suggests the nearest valid key for a misspelt one (edit distance).
import { closest, distance } from 'fastest-levenshtein';
import { z } from 'zod';
import { badInput } from '../util/errors.js';
import { formatKeyPath, type YamlFile } from './yaml-file.js';

/**
 * The seed's confs leave unset keys empty (`max_tokens_in_paged_kv_cache:` is null). Null means
 * "not set" everywhere, so nulls are dropped from maps before validation.
 */
export function stripNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripNulls);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = stripNulls(v);
    return out;
  }
  return value;
}

export function validateConf<S extends z.ZodType>(schema: S, file: YamlFile, what: string): z.output<S> {
  const data = stripNulls(file.data ?? {});
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw badInput(`${file.shown}: a ${what} is a YAML mapping of keys, found ${describe(data)}`, `start from the shipped conf/${what === 'server conf' ? 'server' : 'inference_qwen3'}.yml`);
  }
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  refuseSwappedConf(file, what, data as Record<string, unknown>);
  const lines = result.error.issues.slice(0, 12).flatMap((issue) => issueLines(schema, file, data, issue));
  const more = result.error.issues.length > 12 ? `\n  ... and ${result.error.issues.length - 12} more` : '';
  const first = lines[0] ?? `${file.shown}: invalid ${what}`;
  const rest = lines.slice(1).map((l) => `\n  ${l}`).join('');
  throw badInput(`${first}${rest}${more}`, `edit ${file.shown} (the shipped conf/ files show every key with a comment)`);
}

/**
 * `--inference_conf=conf/server.yml --server_conf=conf/inference.yml`: one conf of each kind, each
 * given to the other flag. Said as that, instead of a line per key the other kind does not know.
 */
function refuseSwappedConf(file: YamlFile, what: string, data: Record<string, unknown>): void {
  const isInference = 'models' in data;
  const isServer = !isInference && ('interface' in data || 'max_concurrency' in data);
  if (what === 'inference conf' && isServer) {
    throw badInput(`${file.shown} is a server conf (interface:, no models:), given as the inference conf`, 'pass it as --server_conf, and an inference conf (models:) as --inference_conf');
  }
  if (what === 'server conf' && isInference) {
    throw badInput(`${file.shown} is an inference conf (models:), given as the server conf`, 'pass it as --inference_conf, and a server conf (interface:) as --server_conf');
  }
}

function issueLines(schema: z.ZodType, file: YamlFile, data: unknown, issue: z.core.$ZodIssue): string[] {
  const keyPath = issue.path as (string | number)[];
  if (issue.code === 'unrecognized_keys') {
    const allowed = objectKeysAt(schema, keyPath);
    return issue.keys.map((key) => {
      const full = [...keyPath, key];
      return `${file.where(full)}: ${formatKeyPath(full)}: unknown key${suggest(key, allowed)}`;
    });
  }
  const at = `${file.where(keyPath)}: ${formatKeyPath(keyPath)}`;
  const got = valueAt(data, keyPath);
  switch (issue.code) {
    case 'invalid_value':
      return [`${at}: ${show(got)} is not allowed; allowed values: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`];
    case 'invalid_type': {
      const expected = issue.expected === 'int' ? 'a whole number' : issue.expected;
      if (got === undefined) return [`${at}: missing; expected ${expected}`];
      return [`${at}: expected ${expected}, got ${show(got)} (${describe(got)})`];
    }
    case 'too_small':
    case 'too_big':
      return [`${at}: ${show(got)} ${sizeRule(issue)}`];
    case 'invalid_union':
    case 'invalid_format':
    case 'custom':
      // A required key left out reads as missing, as invalid_type's do, never "undefined is not valid".
      if (got === undefined) return [`${at}: missing; ${inWords(issue.message)}`];
      return [`${at}: ${show(got)} is not valid; ${inWords(issue.message)}`];
    default:
      return [`${at}: ${inWords(issue.message)}`];
  }
}

/**
 * A bound in words: "is out of range: must be at least 1", "is empty; a value is needed". zod's
 * own text ("Too small: expected string to have >=1 characters") is used by no message; a
 * schema's own message (api_key's "an API key has at least 8 characters") is kept.
 */
function sizeRule(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  const own = !/^Too (small|big)\b/i.test(issue.message);
  const small = issue.code === 'too_small';
  const bound = Number(small ? (issue as z.core.$ZodIssueTooSmall).minimum : (issue as z.core.$ZodIssueTooBig).maximum);
  if (issue.origin === 'string' || issue.origin === 'array') {
    const unit = issue.origin === 'string' ? 'character' : 'item';
    if (own) return `is too ${small ? 'short' : 'long'}: ${issue.message}`;
    if (small && bound === 1) return issue.origin === 'string' ? 'is empty; a value is needed' : 'is empty; list at least one item';
    return `is too ${small ? 'short' : 'long'}: must have ${small ? 'at least' : 'at most'} ${bound} ${unit}${bound === 1 ? '' : 's'}`;
  }
  if (own) return `is out of range: ${issue.message}`;
  const inclusive = issue.inclusive !== false;
  return `is out of range: must be ${small ? (inclusive ? 'at least' : 'above') : inclusive ? 'at most' : 'below'} ${bound}`;
}

/** zod's fallback texts ("Invalid input", "Invalid string: must match pattern /.../") never reach a user. */
function inWords(message: string): string {
  return /^Invalid\b/.test(message) ? 'not a value this key takes (the shipped conf/ files show what each key takes)' : message;
}

export function suggest(key: string, allowed: string[]): string {
  if (allowed.length === 0) return '';
  const best = closest(key, allowed);
  const limit = Math.max(2, Math.floor(key.length / 3));
  if (distance(key.toLowerCase(), best.toLowerCase()) <= limit) return `; did you mean "${best}"?`;
  return `; valid keys here: ${allowed.join(', ')}`;
}

// Follows a key path through the schema (objects, arrays, optional/default/nullable wrappers,
// unions) to list the keys the object there accepts.
function objectKeysAt(schema: z.ZodType, keyPath: (string | number)[]): string[] {
  let current: z.ZodType | undefined = schema;
  for (const key of keyPath) {
    current = current && unwrap(current);
    if (!current) return [];
    const def = current._zod.def as unknown as Record<string, unknown>;
    if (def.type === 'object') current = (def.shape as Record<string, z.ZodType>)[String(key)];
    else if (def.type === 'array') current = def.element as z.ZodType;
    else return [];
  }
  current = current && unwrap(current);
  if (!current) return [];
  const def = current._zod.def as unknown as Record<string, unknown>;
  return def.type === 'object' ? Object.keys(def.shape as object) : [];
}

function unwrap(schema: z.ZodType): z.ZodType | undefined {
  let current = schema;
  for (let i = 0; i < 16; i++) {
    const def = current._zod.def as unknown as Record<string, unknown>;
    if (def.type === 'optional' || def.type === 'nullable' || def.type === 'default' || def.type === 'prefault') {
      current = def.innerType as z.ZodType;
    } else if (def.type === 'pipe') {
      current = def.in as z.ZodType;
    } else if (def.type === 'union') {
      const options = def.options as z.ZodType[];
      const obj = options.map(unwrap).find((o) => o && (o._zod.def as { type: string }).type === 'object');
      return obj ?? current;
    } else {
      return current;
    }
  }
  return current;
}

function valueAt(data: unknown, keyPath: (string | number)[]): unknown {
  let current = data;
  for (const key of keyPath) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number' && !Number.isInteger(value)) return 'a decimal number';
  return `a ${typeof value}`;
}
