// JSON Schema -> grammar. Every value the grammar allows validates against the schema (the
// compiler only ever narrows: optional properties may be left out, extra properties are never
// written); every keyword it cannot enforce is refused with a SchemaError naming it.
// Recursion through $ref is followed at most MAX_RECURSION levels deep; past that only the
// alternatives that do not recurse remain (empty arrays, optional properties left out, null).
import { MAX_GRAMMAR_SIZE, MAX_NODES } from './automaton.js';
import { alt, exprSize, lit, literalChoice, literalTrie, nothing, seq, type Expr, type RuleSet } from './grammar.js';
import { anyJson, jsonString } from './json-grammar.js';
import { anyInteger, anyNumber, integerBounds, integerRange, numberRange, type Bound } from './number-range.js';
import { arrayExpr, objectExpr } from './schema-containers.js';
import { enforcedKeywords, ignoredKeywords, jsonTypes, keywordTypes, refusedKeywords, type JsonType } from './schema-keywords.js';
import { literalKinds, literalMatches, schemaKinds } from './schema-literals.js';
import { contradictoryCounts, count, isObject, MAX_LENGTH_BOUND, MAX_RECURSION, SchemaError, upperCount, type SchemaObject } from './schema-errors.js';
import { patternBody, RegexError } from './regex.js';
import { recursivePointers } from './schema-refs.js';
import { stringFormats } from './string-formats.js';

/** Enums of more values than this are a trie rule of their own (built directly, without subset construction). */
const INLINE_LITERALS = 16;
/** Sub-schemas one grammar may compile (the same sub-schema counts once per recursion depth it is expanded at). */
export const MAX_SCHEMA_PARTS = 10_000;
/** Largest total size of an enum's values written as JSON. */
export const MAX_LITERAL_BYTES = 4_000_000;

const utf8 = new TextEncoder();
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** Per-path recursion counts of the $refs being expanded. */
export type RefDepth = ReadonlyMap<string, number>;

export class SchemaCompiler {
  private readonly ids = new WeakMap<object, number>();
  private nextId = 0;
  private readonly targets = new Map<string, unknown>();
  /** The references that can recur ("all" when the schema is too large to tell). */
  private recursive?: Set<string> | 'all';

  /**
   * @param rules where rules go (shared by the schemas of one grammar)
   * @param ns a prefix that keeps this schema's rule names apart from other schemas'
   * @param document the whole schema, which "#/..." references point into
   * @param budget sub-schemas compiled so far, shared by the schemas of one grammar
   */
  constructor(
    readonly rules: RuleSet,
    private readonly ns: string,
    private readonly document: unknown,
    private readonly budget: { parts: number } = { parts: 0 },
  ) {}

  /** The grammar of the whole document. */
  compileRoot(): Expr {
    return this.value(this.document, '#', new Map());
  }

  value(schema: unknown, path: string, refs: RefDepth): Expr {
    // Each $ref is expanded once per recursion depth of every $ref around it, so mutually
    // recursive definitions multiply: bounded here, before they can take the server's time.
    if (++this.budget.parts > MAX_SCHEMA_PARTS)
      throw new SchemaError(
        `the schema expands to more than ${fmt(MAX_SCHEMA_PARTS)} parts to compile (its sub-schemas, a recursive "$ref" counted again at each of up to ${MAX_RECURSION} levels it is followed inside itself, so mutually recursive definitions multiply); make it smaller or flatten the recursion`,
        path,
      );
    const e = this.unsized(schema, path, refs);
    // Checked part by part on the way up, so the refusal names the innermost part that is too large.
    const size = exprSize(e);
    if (size > MAX_GRAMMAR_SIZE)
      throw new SchemaError(`this part of the schema is too large to enforce: written out, its grammar has about ${fmt(size)} states; the limit is ${fmt(MAX_GRAMMAR_SIZE)}`, path);
    return e;
  }

  private unsized(schema: unknown, path: string, refs: RefDepth): Expr {
    if (schema === true) return anyJson(this.rules);
    if (schema === false) return nothing;
    if (!isObject(schema)) throw new SchemaError('a schema must be an object or a boolean', path);
    this.checkKeywords(schema, path);
    if (schema.$ref !== undefined) return this.ref(schema, path, refs);
    if (schema.allOf !== undefined) return this.allOf(schema, path, refs);
    if (schema.anyOf !== undefined || schema.oneOf !== undefined) return this.anyOf(schema, path, refs);
    if (schema.enum !== undefined || schema.const !== undefined) return this.literals(schema, path);
    const types = this.types(schema, path);
    if (types === undefined) return anyJson(this.rules);
    return alt(...types.map((t) => this.typed(t, schema, path, refs)));
  }

  /** A sub-schema as a rule of its own (array items, $ref targets): written once, called where used. */
  rule(schema: unknown, path: string, refs: RefDepth): Expr {
    if (!isObject(schema)) return this.value(schema, path, refs);
    const id = this.idOf(schema);
    const depth = [...refs].filter(([, n]) => n > 0).map(([p, n]) => `${p}=${n}`).sort().join(',');
    return this.rules.define(`${this.ns}s${id}[${depth}]`, () => this.value(schema, path, refs), path);
  }

  private idOf(schema: object): number {
    let id = this.ids.get(schema);
    if (id === undefined) this.ids.set(schema, (id = this.nextId++));
    return id;
  }

  private checkKeywords(schema: SchemaObject, path: string): void {
    for (const key of Object.keys(schema)) {
      if (ignoredKeywords.has(key) || enforcedKeywords.has(key) || key.startsWith('x-')) continue;
      const refused = refusedKeywords.get(key);
      throw new SchemaError(refused ? `"${key}" (${refused}) is not supported` : `unknown keyword "${key}"`, path);
    }
  }

  /** Keywords other than annotations, e.g. to refuse siblings of $ref we would silently drop. */
  private constraining(schema: SchemaObject, except: string[]): string[] {
    return Object.keys(schema).filter((k) => !ignoredKeywords.has(k) && !k.startsWith('x-') && !except.includes(k));
  }

  private ref(schema: SchemaObject, path: string, refs: RefDepth): Expr {
    const extra = this.constraining(schema, ['$ref']);
    if (extra.length > 0) throw new SchemaError(`"$ref" next to other keywords (${extra.join(', ')}) is not supported; move them into the referenced schema`, path);
    const pointer = schema.$ref;
    if (typeof pointer !== 'string' || !pointer.startsWith('#')) throw new SchemaError('only local references ("#/$defs/...") are supported in "$ref"', path);
    let target = this.targets.get(pointer);
    if (target === undefined) this.targets.set(pointer, (target = resolvePointer(this.document, pointer, path)));
    // A reference that cannot lead back to itself is not counted, so a definition shared by
    // many others compiles once, not once per path to it.
    this.recursive ??= recursivePointers(this.document) ?? 'all';
    if (this.recursive !== 'all' && !this.recursive.has(pointer)) return this.rule(target, pointer, refs);
    const depth = refs.get(pointer) ?? 0;
    if (depth > MAX_RECURSION) return nothing;
    const inner = new Map(refs);
    inner.set(pointer, depth + 1);
    return this.rule(target, pointer, inner);
  }

  private allOf(schema: SchemaObject, path: string, refs: RefDepth): Expr {
    const list = schema.allOf;
    const extra = this.constraining(schema, ['allOf']);
    if (!Array.isArray(list) || list.length !== 1 || extra.length > 0)
      throw new SchemaError('"allOf" is supported only with a single schema and nothing beside it', path);
    return this.value(list[0], `${path}/allOf/0`, refs);
  }

  private anyOf(schema: SchemaObject, path: string, refs: RefDepth): Expr {
    const key = schema.anyOf !== undefined ? 'anyOf' : 'oneOf';
    const list = schema[key];
    if (schema.anyOf !== undefined && schema.oneOf !== undefined) throw new SchemaError('"anyOf" and "oneOf" in one schema are not supported', path);
    if (!Array.isArray(list) || list.length === 0) throw new SchemaError(`"${key}" must be a non-empty array`, path);
    const extra = this.constraining(schema, [key]);
    if (extra.length > 0) throw new SchemaError(`"${key}" next to other keywords (${extra.join(', ')}) is not supported; move them into each alternative`, path);
    if (key === 'oneOf' && !disjoint(list, this.document)) {
      throw new SchemaError('"oneOf" is supported only when its alternatives cannot match the same value (different types or constants); use "anyOf"', path);
    }
    return alt(...list.map((s, i) => this.value(s, `${path}/${key}/${i}`, refs)));
  }

  private literals(schema: SchemaObject, path: string): Expr {
    const values = schema.const !== undefined ? [schema.const] : schema.enum;
    if (!Array.isArray(values) || values.length === 0) throw new SchemaError('"enum" must be a non-empty array', path);
    if (schema.const !== undefined && schema.enum !== undefined) throw new SchemaError('"const" and "enum" in one schema are not supported', path);
    const types = this.types(schema, path, false);
    const kept = values.filter((v) => literalMatches(v, schema, types));
    if (kept.length === 0) throw new SchemaError('no value of "enum"/"const" satisfies the other keywords of the schema', path);
    // String values share their quotes: the trie holds what is between them, so an enum of n
    // strings costs its distinct prefixes once, not once more for each value's closing quote.
    const strings: Uint8Array[] = [];
    const others: Uint8Array[] = [];
    let total = 0;
    for (const v of kept) {
      const json = utf8.encode(JSON.stringify(v));
      total += json.length;
      if (typeof v === 'string') strings.push(json.subarray(1, json.length - 1));
      else others.push(json);
    }
    // Measured before the tries are built: their nodes are at most the values' bytes.
    const tries = total > MAX_LITERAL_BYTES ? undefined : [strings, others].map((group) => (group.length > 0 ? literalTrie(group) : undefined));
    // A trie of n nodes is n states and about as many edges, plus one accepting step per value.
    const size = tries ? tries.reduce((sum, t) => sum + (t ? 2 * t.nodes + t.sorted.length : 0), 0) : Infinity;
    const nodes = tries ? tries.reduce((sum, t) => sum + (t?.nodes ?? 0), 0) : Infinity;
    const what = `"enum" is too large to enforce: its ${fmt(kept.length)} values take ${fmt(total)} bytes as JSON`;
    if (!tries) throw new SchemaError(`${what}; the limit is ${fmt(MAX_LITERAL_BYTES)} bytes`, path);
    if (size > MAX_GRAMMAR_SIZE) throw new SchemaError(`${what}, a grammar of about ${fmt(size)} states; the limit is ${fmt(MAX_GRAMMAR_SIZE)} states`, path);
    if (nodes > MAX_NODES) throw new SchemaError(`${what}, a trie of ${fmt(nodes)} states; the limit is ${fmt(MAX_NODES)} states`, path);
    const [stringTrie, otherTrie] = tries;
    const id = this.idOf(schema);
    // A large trie is a rule of its own, which the automaton builder turns into states directly.
    const choice = (sorted: Uint8Array[], suffix: string) =>
      sorted.length <= INLINE_LITERALS ? literalChoice(sorted) : this.rules.define(`${this.ns}enum${id}${suffix}`, () => literalChoice(sorted), path);
    return alt(
      ...(stringTrie ? [seq(lit('"'), choice(stringTrie.sorted, 's'), lit('"'))] : []),
      ...(otherTrie ? [choice(otherTrie.sorted, 'v')] : []),
    );
  }

  /** The schema's types: "type" (plus null for OpenAPI "nullable"), else inferred from keywords; undefined: any. */
  private types(schema: SchemaObject, path: string, infer = true): JsonType[] | undefined {
    let types: string[] | undefined;
    if (schema.type !== undefined) {
      types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
      for (const t of types) {
        if (!jsonTypes.includes(t as JsonType)) throw new SchemaError(`unknown type ${JSON.stringify(t)}`, path);
      }
      if (types.length === 0) throw new SchemaError('"type" must name at least one type', path);
    } else if (infer) {
      const inferred = new Set(Object.keys(schema).flatMap((k) => (keywordTypes[k] ? [keywordTypes[k]] : [])));
      if (inferred.size > 0) types = [...inferred];
    }
    if (types && schema.nullable === true && !types.includes('null')) types = [...types, 'null'];
    return types as JsonType[] | undefined;
  }

  private typed(type: JsonType, schema: SchemaObject, path: string, refs: RefDepth): Expr {
    switch (type) {
      case 'null':
        return lit('null');
      case 'boolean':
        return alt(lit('true'), lit('false'));
      case 'string':
        return this.string(schema, path);
      case 'integer':
      case 'number':
        return this.number(type, schema, path);
      case 'object':
        return objectExpr(this, schema, path, refs);
      case 'array':
        return arrayExpr(this, schema, path, refs);
    }
  }

  private string(schema: SchemaObject, path: string): Expr {
    contradictoryCounts(schema, 'minLength', 'maxLength', 'string', path);
    const min = count(schema, 'minLength', path, MAX_LENGTH_BOUND) ?? 0;
    const max = upperCount(schema, 'maxLength', path, MAX_LENGTH_BOUND);
    if (schema.pattern !== undefined) {
      if (typeof schema.pattern !== 'string') throw new SchemaError('"pattern" must be a string', path);
      if (schema.format !== undefined || schema.minLength !== undefined || schema.maxLength !== undefined)
        throw new SchemaError('"pattern" together with "format", "minLength" or "maxLength" is not supported', path);
      const pattern = schema.pattern;
      let body: Expr;
      try {
        body = patternBody(pattern);
      } catch (err) {
        if (err instanceof RegexError) throw new SchemaError(`"pattern" ${JSON.stringify(pattern)}: ${err.message}`, path);
        throw err;
      }
      const size = exprSize(body);
      if (size > MAX_GRAMMAR_SIZE)
        throw new SchemaError(
          `"pattern" ${JSON.stringify(pattern)} is too large to enforce: its counted repetitions write out about ${fmt(size)} states; the limit is ${fmt(MAX_GRAMMAR_SIZE)}. Use smaller counts or "*" / "+"`,
          path,
        );
      // A rule of its own, so a pattern whose automaton is too large to build is refused by name.
      return seq(lit('"'), this.rules.define(`${this.ns}pattern${this.idOf(schema)}`, () => body, path), lit('"'));
    }
    if (schema.format !== undefined) {
      const body = stringFormats.get(String(schema.format));
      if (!body) throw new SchemaError(`"format": ${JSON.stringify(schema.format)} is not supported (supported: ${[...stringFormats.keys()].join(', ')})`, path);
      if (schema.minLength !== undefined || schema.maxLength !== undefined)
        throw new SchemaError('"format" together with "minLength"/"maxLength" is not supported', path);
      return seq(lit('"'), body, lit('"'));
    }
    if (min > max) return nothing;
    return jsonString(min, max);
  }

  private number(type: 'integer' | 'number', schema: SchemaObject, path: string): Expr {
    if (schema.multipleOf !== undefined && !(type === 'integer' && schema.multipleOf === 1))
      throw new SchemaError('"multipleOf" is not supported', path);
    const lower = bound(schema, 'minimum', 'exclusiveMinimum', path);
    const upper = bound(schema, 'maximum', 'exclusiveMaximum', path);
    if (lower && upper && (lower.value > upper.value || (lower.value === upper.value && (lower.exclusive || upper.exclusive))))
      throw new SchemaError(`the lower bound ${lower.value} is not below the upper bound ${upper.value}: no ${type} satisfies both`, path);
    if (type === 'integer') {
      if (!lower && !upper) return anyInteger();
      const { lo, hi } = integerBounds(lower, upper);
      return integerRange(lo, hi);
    }
    if (!lower && !upper) return anyNumber();
    const e = numberRange(lower, upper);
    if (!e) throw new SchemaError('number bounds that contain no integer (e.g. 0.2 to 0.8) are not supported', path);
    return e;
  }
}

/** minimum/exclusiveMinimum (draft 6+ numbers, or draft 4's boolean flag) as one bound. */
function bound(schema: SchemaObject, inclusiveKey: string, exclusiveKey: string, path: string): Bound | undefined {
  const inc = schema[inclusiveKey];
  const exc = schema[exclusiveKey];
  for (const [k, v] of [[inclusiveKey, inc], [exclusiveKey, exc]] as const) {
    if (v !== undefined && typeof v !== 'boolean' && (typeof v !== 'number' || !Number.isFinite(v))) throw new SchemaError(`"${k}" must be a number`, path);
  }
  const lower = inclusiveKey === 'minimum';
  const candidates: Bound[] = [];
  if (typeof inc === 'number') candidates.push({ value: inc, exclusive: exc === true });
  if (typeof exc === 'number') candidates.push({ value: exc, exclusive: true });
  if (candidates.length === 0) return undefined;
  // Both given: the tighter one wins.
  return candidates.reduce((a, b) => {
    if (a.value === b.value) return a.exclusive ? a : b;
    return lower ? (a.value > b.value ? a : b) : a.value < b.value ? a : b;
  });
}

export function resolvePointer(document: unknown, pointer: string, path: string): unknown {
  if (pointer === '#') return document;
  if (!pointer.startsWith('#/')) throw new SchemaError(`cannot resolve "$ref": ${pointer} (anchors are not supported)`, path);
  let node: unknown = document;
  for (const raw of pointer.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node) && /^\d+$/.test(key)) node = node[Number(key)];
    else if (isObject(node) && Object.hasOwn(node, key)) node = node[key];
    else throw new SchemaError(`"$ref": ${pointer} points at nothing`, path);
  }
  return node;
}

/** The alternatives of a oneOf can never match one value: different types, or different constants. */
function disjoint(list: unknown[], document: unknown): boolean {
  const kinds = list.map((s) => schemaKinds(s, document));
  if (kinds.every((k) => k !== undefined)) {
    const seen = new Set<string>();
    let overlap = false;
    for (const k of kinds) for (const t of k!) (seen.has(t) ? (overlap = true) : seen.add(t));
    if (!overlap) return true;
  }
  const literals = list.map(literalKinds);
  if (literals.every((l) => l !== undefined)) {
    const all = literals.flat().map((v) => JSON.stringify(v));
    return new Set(all).size === all.length;
  }
  return false;
}
