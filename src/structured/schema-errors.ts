// The compiler's limits and its one error type.

/** How many times a $ref may expand inside its own expansion. */
export const MAX_RECURSION = 6;
/** Largest minLength enforced, and the most characters written under a larger maxLength (each counted character is grammar state). */
export const MAX_LENGTH_BOUND = 2000;
/** The same for minItems / maxItems / minProperties / maxProperties. */
export const MAX_COUNT_BOUND = 1000;

/** A schema the compiler refuses; `path` is a JSON pointer into the schema ("#/properties/x"). */
export class SchemaError extends Error {
  constructor(
    readonly reason: string,
    readonly path: string,
  ) {
    super(`${reason} (at ${path})`);
  }
}

export type SchemaObject = Record<string, unknown>;

export function isObject(v: unknown): v is SchemaObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A non-negative integer keyword, refused above `limit`. */
export function count(schema: SchemaObject, key: string, path: string, limit: number): number | undefined {
  const v = schema[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new SchemaError(`"${key}" must be a non-negative integer`, path);
  if (v > limit) throw new SchemaError(`"${key}" above ${limit} is not supported`, path);
  return v;
}

/** minLength above maxLength (or minItems above maxItems): nothing satisfies both; said as such. */
export function contradictoryCounts(schema: SchemaObject, minKey: string, maxKey: string, what: string, path: string): void {
  const lo = schema[minKey], hi = schema[maxKey];
  if (typeof lo === 'number' && typeof hi === 'number' && lo > hi)
    throw new SchemaError(`"${minKey}" ${lo} is above "${maxKey}" ${hi}: no ${what} satisfies both`, path);
}

/**
 * An upper bound (maxLength, maxItems, ...): Infinity when absent; above `limit` it is tightened
 * to `limit`, which only narrows what may be written, so every output still validates.
 */
export function upperCount(schema: SchemaObject, key: string, path: string, limit: number): number {
  const v = schema[key];
  if (v === undefined) return Infinity;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new SchemaError(`"${key}" must be a non-negative integer`, path);
  return Math.min(v, limit);
}
