// Objects and arrays of a JSON Schema as grammar. Objects list their declared properties in
// schema order (required ones always, optional ones maybe) and never add others; an object
// without declared properties is a free-form map. Arrays: prefixItems (tuples) then items,
// with minItems/maxItems counted exactly. Repeated parts (items, map values) are rules, so a
// nested schema is written once however often it may occur.
import { alt, empty, lit, nothing, rep, seq, type Expr, type GraphEdge } from './grammar.js';
import { jsonArrayOf, jsonLiteral, jsonObjectOf, jsonString, separators } from './json-grammar.js';
import type { RefDepth, SchemaCompiler } from './schema-compiler.js';
import { contradictoryCounts, count, isObject, MAX_COUNT_BOUND, SchemaError, upperCount, type SchemaObject } from './schema-errors.js';

export function objectExpr(c: SchemaCompiler, schema: SchemaObject, path: string, refs: RefDepth): Expr {
  const props = schema.properties ?? {};
  if (!isObject(props)) throw new SchemaError('"properties" must be an object', path);
  const required = schema.required ?? [];
  if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) throw new SchemaError('"required" must be an array of property names', path);
  const { colon, comma } = separators(c.rules);
  // disable_additional_properties: an object that does not say otherwise takes no other keys.
  const additional = schema.additionalProperties ?? (c.rules.json.closedObjects ? false : undefined);
  if (additional !== undefined && typeof additional !== 'boolean' && !isObject(additional))
    throw new SchemaError('"additionalProperties" must be a boolean or a schema', path);
  const minProps = count(schema, 'minProperties', path, MAX_COUNT_BOUND);
  const maxProps = upperCount(schema, 'maxProperties', path, MAX_COUNT_BOUND);

  const entries: [string, unknown, string][] = Object.entries(props).map(([k, v]) => [k, v, `${path}/properties/${escapePointer(k)}`]);
  for (const r of new Set(required as string[])) {
    if (Object.hasOwn(props, r)) continue;
    if (additional === false)
      throw new SchemaError(`required property "${r}" is not in "properties" and "additionalProperties" is false, so no object satisfies the schema`, path);
    entries.push([r, additional ?? true, `${path}/additionalProperties`]);
  }

  if (entries.length === 0) {
    if (additional === false) return (minProps ?? 0) > 0 ? nothing : lit('{}');
    // A free-form map: any keys, values of additionalProperties (any JSON when absent).
    const value = c.rule(additional ?? true, `${path}/additionalProperties`, refs);
    const min = minProps ?? 0;
    const max = maxProps;
    return min > max ? nothing : jsonObjectOf(seq(jsonString(), colon, value), comma, min, max);
  }

  const requiredSet = new Set(required as string[]);
  const nRequired = entries.filter(([k]) => requiredSet.has(k)).length;
  if (minProps !== undefined && minProps > nRequired)
    throw new SchemaError('"minProperties" above the number of required properties is not supported; list the properties in "required"', path);
  if (maxProps < entries.length)
    throw new SchemaError('"maxProperties" below the number of declared properties is not supported', path);

  // Nodes: E_k "nothing written yet, at property k", N_k "something written, at property k",
  // P_k "property k comes next"; the comma is written before P_k only from N_k. Each property's
  // value appears once in the graph, so nesting does not multiply the grammar.
  const n = entries.length;
  const E = (k: number) => k;
  const N = (k: number) => n + 1 + k;
  const P = (k: number) => 2 * n + 2 + k;
  const end = 3 * n + 2;
  const edges: GraphEdge[] = [
    { from: E(n), to: end },
    { from: N(n), to: end },
  ];
  entries.forEach(([name, sub, subPath], k) => {
    const value = c.value(sub, subPath, refs);
    edges.push({ from: E(k), to: P(k) }, { from: N(k), to: P(k), expr: comma }, { from: P(k), to: N(k + 1), expr: seq(jsonLiteral(name), colon, value) });
    if (!requiredSet.has(name)) edges.push({ from: E(k), to: E(k + 1) }, { from: N(k), to: N(k + 1) });
  });
  return seq(lit('{'), { k: 'graph', nodes: end + 1, start: E(0), end, edges }, lit('}'));
}

export function arrayExpr(c: SchemaCompiler, schema: SchemaObject, path: string, refs: RefDepth): Expr {
  if (schema.uniqueItems === true) throw new SchemaError('"uniqueItems": true is not supported', path);
  contradictoryCounts(schema, 'minItems', 'maxItems', 'array', path);
  const min = count(schema, 'minItems', path, MAX_COUNT_BOUND) ?? 0;
  const max = upperCount(schema, 'maxItems', path, MAX_COUNT_BOUND);
  let prefix: unknown[] = [];
  let rest: unknown;
  let restPath: string;
  if (schema.prefixItems !== undefined) {
    if (!Array.isArray(schema.prefixItems)) throw new SchemaError('"prefixItems" must be an array of schemas', path);
    if (Array.isArray(schema.items)) throw new SchemaError('"items" must be a schema when "prefixItems" is given', path);
    prefix = schema.prefixItems;
    rest = schema.items ?? true;
    restPath = `${path}/items`;
  } else if (Array.isArray(schema.items)) {
    prefix = schema.items;
    rest = schema.additionalItems ?? true;
    restPath = `${path}/additionalItems`;
  } else {
    rest = schema.items ?? true;
    restPath = `${path}/items`;
  }
  if (min > max) return nothing;
  const { comma } = separators(c.rules);
  const restItem = rest === false ? undefined : c.rule(rest, restPath, refs);
  if (prefix.length === 0) return restItem ? jsonArrayOf(restItem, comma, min, max) : min === 0 ? lit('[]') : nothing;

  const p = prefix.map((s, i) => c.rule(s, `${path}/${schema.prefixItems ? 'prefixItems' : 'items'}/${i}`, refs));
  const written = (k: number): Expr => seq(...p.slice(0, k).flatMap((e, i) => (i === 0 ? [e] : [comma, e])));
  const alts: Expr[] = [];
  for (let k = 0; k < p.length; k++) if (k >= min && k <= max) alts.push(seq(lit('['), written(k), lit(']')));
  const m = p.length;
  if (m <= max) {
    const restMin = Math.max(0, min - m);
    const restMax = restItem ? max - m : 0;
    if (restMin <= restMax) {
      const more = restItem && restMax > 0 ? rep(seq(comma, restItem), restMin, restMax) : empty;
      alts.push(seq(lit('['), written(m), more, lit(']')));
    }
  }
  return alt(...alts);
}

function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}
