// The rules' automata -> the flat form the native matcher reads (native/src/grammar/grammar.h):
// states from which no complete output is reachable are dropped, so the matcher never walks
// into a dead end, and the live states of the rules reachable from the root are numbered, the
// root's first.

const MAGIC = 0x47524d31;
export const FLAG_ACCEPT = 1;
export const FLAG_FREE = 2;

/** One rule's automaton, deterministic over symbols and over calls (per callee); state 0 is the start. */
export interface RuleDfa {
  flags: ArrayLike<number>;
  /** Symbol edges of state d: indices edgeStart[d] .. edgeStart[d + 1] of lo/hi/to, ascending by lo. */
  edgeStart: ArrayLike<number>;
  lo: ArrayLike<number>;
  hi: ArrayLike<number>;
  to: ArrayLike<number>;
  /** Call edges of state d: indices callStart[d] .. callStart[d + 1] of callee (a rule number) / ret. */
  callStart: ArrayLike<number>;
  callee: ArrayLike<number>;
  ret: ArrayLike<number>;
  /** Every state reaches an accepting one without calls (a trie): nothing to prune. */
  allLive?: boolean;
}

/** Compressed rows: the items of node n are items[start[n] .. start[n + 1]). */
export function rows(n: number, from: ArrayLike<number>): { start: Int32Array; items: Int32Array } {
  const start = new Int32Array(n + 1);
  for (let k = 0; k < from.length; k++) start[from[k] + 1]++;
  for (let i = 0; i < n; i++) start[i + 1] += start[i];
  const fill = start.slice(0, n);
  const items = new Int32Array(from.length);
  for (let k = 0; k < from.length; k++) items[fill[from[k]]++] = k;
  return { start, items };
}

/**
 * Drops what cannot finish: a rule is productive when its start reaches its end through
 * symbols and calls of productive rules; a state stays when it reaches its rule's end that way.
 * Returns the live states per rule (state 0 is dead for unproductive rules). A worklist over
 * reversed edges keeps this linear in the automaton's size.
 */
function liveStates(dfas: RuleDfa[]): Uint8Array[] {
  const live = dfas.map((d) => (d.allLive ? new Uint8Array(d.flags.length).fill(1) : Uint8Array.from(d.flags, (f) => f & FLAG_ACCEPT)));
  // Reversed edges by target state: the sources of symbol edges, and of call edges (whose
  // callee must be productive for the source to be live). Not needed inside a rule whose
  // states are all live.
  const reversed = (d: RuleDfa, start: ArrayLike<number>, target: ArrayLike<number>) => {
    const src: number[] = [];
    for (let s = 0; s < d.flags.length; s++) for (let j = start[s]; j < start[s + 1]; j++) src.push(s);
    return { src, by: rows(d.flags.length, target) };
  };
  const revSym = dfas.map((d) => (d.allLive ? undefined : reversed(d, d.edgeStart, d.to)));
  const revCall = dfas.map((d) => reversed(d, d.callStart, d.ret));
  // Call sites of each rule, as [caller, source state, return state] triples.
  const sites: number[][] = dfas.map(() => []);
  dfas.forEach((d, r) => revCall[r].src.forEach((s, j) => sites[d.callee[j]].push(r, s, d.ret[j])));
  const work: number[] = [];
  // A rule whose states are all live only needs its start on the list, for its call sites.
  live.forEach((l, r) => (dfas[r].allLive ? work.push(r, 0) : l.forEach((ok, s) => ok && work.push(r, s))));
  const mark = (r: number, s: number) => {
    if (!live[r][s]) {
      live[r][s] = 1;
      work.push(r, s);
    }
  };
  while (work.length > 0) {
    const s = work.pop()!;
    const r = work.pop()!;
    const sym = revSym[r];
    if (sym) for (let j = sym.by.start[s]; j < sym.by.start[s + 1]; j++) mark(r, sym.src[sym.by.items[j]]);
    const call = revCall[r];
    for (let j = call.by.start[s]; j < call.by.start[s + 1]; j++) {
      const k = call.by.items[j];
      if (live[dfas[r].callee[k]][0]) mark(r, call.src[k]);
    }
    if (s === 0) {
      const at = sites[r];
      for (let j = 0; j < at.length; j += 3) if (live[at[j]][at[j + 2]]) mark(at[j], at[j + 1]);
    }
  }
  return live;
}

export interface Automaton {
  /** The flat form compileGrammar() takes. */
  data: Int32Array;
  nodes: number;
  specials: number[];
}

/** Prunes and numbers the rules' states (rule `root` first); throws an Error when no output satisfies the grammar. */
export function flatten(dfas: RuleDfa[], root: number, specials: number[]): Automaton {
  const live = liveStates(dfas);
  if (!live[root][0]) throw new Error('no output satisfies the grammar');

  // Number the live states of the rules reachable from the root, root first, each rule's in order.
  const reach: (Uint8Array | undefined)[] = dfas.map(() => undefined);
  const order: number[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const r = pending.pop()!;
    if (reach[r]) continue;
    const d = dfas[r];
    const l = live[r];
    const seen = new Uint8Array(d.flags.length);
    seen[0] = 1;
    const stack = [0];
    while (stack.length > 0) {
      const s = stack.pop()!;
      for (let j = d.edgeStart[s]; j < d.edgeStart[s + 1]; j++) {
        const t = d.to[j];
        if (l[t] && !seen[t]) (seen[t] = 1), stack.push(t);
      }
      for (let j = d.callStart[s]; j < d.callStart[s + 1]; j++) {
        const t = d.ret[j];
        if (!l[t] || !live[d.callee[j]][0]) continue;
        if (!seen[t]) (seen[t] = 1), stack.push(t);
        if (!reach[d.callee[j]]) pending.push(d.callee[j]);
      }
    }
    reach[r] = seen;
    order.push(r);
  }
  const ids: Int32Array[] = dfas.map(() => new Int32Array(0));
  let count = 0;
  for (const r of order) {
    const seen = reach[r]!;
    const m = new Int32Array(seen.length).fill(-1);
    for (let s = 0; s < seen.length; s++) if (seen[s]) m[s] = count++;
    ids[r] = m;
  }
  // Sized for every edge of the reached rules (those into dead states are left out), so a large
  // trie is written without growing arrays.
  let edgeBound = 0;
  let callBound = 0;
  for (const r of order) {
    edgeBound += dfas[r].lo.length;
    callBound += dfas[r].callee.length;
  }
  const edges = new Int32Array(4 * edgeBound);
  const calls = new Int32Array(3 * callBound);
  let ne = 0;
  let nc = 0;
  const flags = new Int32Array(count);
  for (const r of order) {
    const d = dfas[r];
    const m = ids[r];
    for (let s = 0; s < m.length; s++) {
      const id = m[s];
      if (id < 0) continue;
      flags[id] = d.flags[s];
      for (let j = d.edgeStart[s]; j < d.edgeStart[s + 1]; j++) {
        const to = m[d.to[j]];
        if (to < 0) continue;
        edges[ne++] = id;
        edges[ne++] = d.lo[j];
        edges[ne++] = d.hi[j];
        edges[ne++] = to;
      }
      for (let j = d.callStart[s]; j < d.callStart[s + 1]; j++) {
        const to = m[d.ret[j]];
        const callee = ids[d.callee[j]][0] ?? -1;
        if (to < 0 || callee < 0) continue;
        calls[nc++] = id;
        calls[nc++] = callee;
        calls[nc++] = to;
      }
    }
  }
  const header = [MAGIC, count, 0, specials.length, ne / 4, nc / 3];
  const data = new Int32Array(header.length + specials.length + ne + nc + count);
  let at = 0;
  for (const part of [header, specials, edges.subarray(0, ne), calls.subarray(0, nc)]) {
    data.set(part, at);
    at += part.length;
  }
  data.set(flags, at);
  return { data, nodes: count, specials };
}
