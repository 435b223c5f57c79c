// Objects that list their keys in a chosen order. A plain JavaScript object always lists its
// integer-like keys ("1", "10") first, ascending, whatever order they were set in; Python's dict
// keeps the written order, and vLLM and transformers read a client's JSON with it. Where that
// order reaches the model (a tool's parameters printed in the prompt, a call's arguments, the
// properties a schema's grammar writes in turn), the server must see the client's order.
//
// A Proxy whose ownKeys trap answers in that order is an ordinary object to every reader: zod,
// Object.keys / entries (what @huggingface/jinja converts objects with), for...in, spread and
// JSON.stringify all list the keys in it. No library is patched, and objects without such keys
// are never wrapped.

/** `target` seen with its keys in `order`; keys the target gains later follow, in its own order. */
export function withKeyOrder<T extends object>(target: T, order: readonly string[]): T {
  const listed = new Set(order);
  return new Proxy(target, {
    ownKeys(t) {
      const own = Reflect.ownKeys(t);
      const present = new Set(own);
      const keys: (string | symbol)[] = order.filter((k) => present.has(k));
      // Every listed key is an own key, so fewer means the target has keys the order lacks.
      if (keys.length < own.length) for (const k of own) if (typeof k !== 'string' || !listed.has(k)) keys.push(k);
      return keys;
    },
  });
}

/** `target` itself when its keys already come in `order` (no integer-like key out of place), else seen in that order. */
export function inKeyOrder<T extends object>(target: T, order: readonly string[]): T {
  const keys = Object.keys(target);
  return keys.length === order.length && keys.every((k, i) => k === order[i]) ? target : withKeyOrder(target, order);
}

/**
 * Object.fromEntries that keeps the entries' order: how a copy of a client's object is made, so
 * that the copy lists its keys as the original did. A key given twice keeps its first place and
 * its last value, as Object.fromEntries does.
 */
export function objectInOrder(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const out = Object.fromEntries(entries) as Record<string, unknown>;
  return inKeyOrder(out, [...new Set(entries.map(([k]) => k))]);
}
