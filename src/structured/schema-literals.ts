// What a schema can match, read without compiling it: the JSON types of its values (to prove the
// alternatives of a oneOf apart) and whether a constant satisfies the keywords beside it.
import type { JsonType } from './schema-keywords.js';

type SchemaObject = Record<string, unknown>;

const isObject = (v: unknown): v is SchemaObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The JSON type of a value ("integer" only for integral numbers when asked). */
function typeOf(v: unknown): 'string' | 'number' | 'boolean' | 'null' | 'array' | 'object' {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v as 'string' | 'number' | 'boolean' | 'object';
}

/** Code points, as JSON Schema counts string length. */
function length(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Does a constant of enum/const satisfy the schema's types and simple bounds? */
export function literalMatches(v: unknown, schema: SchemaObject, types: JsonType[] | undefined): boolean {
  const t = typeOf(v);
  if (types && !types.some((x) => x === t || (x === 'integer' && t === 'number' && Number.isInteger(v)) || (x === 'number' && t === 'number')))
    return false;
  const num = (k: string) => (typeof schema[k] === 'number' ? (schema[k] as number) : undefined);
  if (t === 'string') {
    const n = length(v as string);
    if (n < (num('minLength') ?? 0) || n > (num('maxLength') ?? Infinity)) return false;
  }
  if (t === 'number') {
    const x = v as number;
    const min = num('minimum');
    const max = num('maximum');
    const emin = num('exclusiveMinimum');
    const emax = num('exclusiveMaximum');
    if (min !== undefined && (schema.exclusiveMinimum === true ? x <= min : x < min)) return false;
    if (max !== undefined && (schema.exclusiveMaximum === true ? x >= max : x > max)) return false;
    if (emin !== undefined && x <= emin) return false;
    if (emax !== undefined && x >= emax) return false;
  }
  if (t === 'array') {
    const n = (v as unknown[]).length;
    if (n < (num('minItems') ?? 0) || n > (num('maxItems') ?? Infinity)) return false;
  }
  return true;
}

/** The constants a schema allows, when it is only enum/const (and annotations). */
export function literalKinds(schema: unknown): unknown[] | undefined {
  if (!isObject(schema)) return undefined;
  if (schema.const !== undefined) return [schema.const];
  if (Array.isArray(schema.enum)) return schema.enum;
  return undefined;
}

/** The JSON types a schema's values can have (integer counts as number); undefined: unknown or any. */
export function schemaKinds(schema: unknown, document: unknown, seen = new Set<unknown>()): Set<string> | undefined {
  if (!isObject(schema) || seen.has(schema)) return undefined;
  seen.add(schema);
  const lits = literalKinds(schema);
  if (lits) return new Set(lits.map(typeOf));
  if (typeof schema.$ref === 'string' && schema.$ref.startsWith('#')) {
    let node: unknown = document;
    for (const raw of schema.$ref.slice(2).split('/').filter((x) => x.length > 0)) {
      const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      node = isObject(node) ? node[key] : Array.isArray(node) ? node[Number(key)] : undefined;
    }
    return schemaKinds(node, document, seen);
  }
  const list = Array.isArray(schema.anyOf) ? schema.anyOf : Array.isArray(schema.oneOf) ? schema.oneOf : undefined;
  if (list) {
    const out = new Set<string>();
    for (const s of list) {
      const k = schemaKinds(s, document, seen);
      if (!k) return undefined;
      for (const t of k) out.add(t);
    }
    return out;
  }
  if (schema.type === undefined) return undefined;
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  const out = new Set<string>(types.map((t) => (t === 'integer' ? 'number' : String(t))));
  if (schema.nullable === true) out.add('null');
  return out;
}
