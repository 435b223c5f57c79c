// Grammar -> the flat automaton the native matcher runs (native/src/grammar/grammar.h): each
// rule becomes a nondeterministic automaton (Thompson's construction), is made deterministic
// over bytes, special tokens and calls (subset construction), and loses every node from which
// no complete output is reachable, so the matcher never walks into a dead end.
import type { Expr, Grammar } from './grammar.js';

const MAGIC = 0x47524d31;
const BYTE_SYMBOLS = 256;
const FLAG_ACCEPT = 1;
const FLAG_FREE = 2;

/** Past this many automaton nodes a grammar is refused (the schema is too large to enforce). */
export const MAX_NODES = 400_000;

export class GrammarTooLarge extends Error {}

interface SymEdge {
  lo: number;
  hi: number;
  to: number;
}
interface CallOut {
  rule: string;
  to: number;
}

/** One rule's automaton: deterministic over symbols and over calls (per callee). */
interface RuleDfa {
  edges: SymEdge[][];
  calls: CallOut[][];
  flags: number[];
}

class Nfa {
  eps: number[][] = [];
  sym: SymEdge[][] = [];
  calls: CallOut[][] = [];
  free: boolean[] = [];

  constructor(
    private readonly specialIndex: (token: number) => number,
    private readonly budget: { nodes: number },
  ) {}

  node(): number {
    if (++this.budget.nodes > MAX_NODES * 4) throw new GrammarTooLarge('the grammar is too large');
    this.eps.push([]);
    this.sym.push([]);
    this.calls.push([]);
    this.free.push(false);
    return this.eps.length - 1;
  }

  /**
   * Adds paths a -> b that spell `e`. Invariant: no edge is added into `a` or out of `b`, so
   * several expressions may share the same a and b (alternatives, graph edges).
   */
  build(e: Expr, a: number, b: number): void {
    switch (e.k) {
      case 'bytes':
        for (const [lo, hi] of e.ranges) this.sym[a].push({ lo, hi, to: b });
        return;
      case 'special': {
        const s = BYTE_SYMBOLS + this.specialIndex(e.token);
        this.sym[a].push({ lo: s, hi: s, to: b });
        return;
      }
      case 'seq': {
        if (e.items.length === 0) {
          this.eps[a].push(b);
          return;
        }
        let cur = a;
        e.items.forEach((item, i) => {
          const next = i === e.items.length - 1 ? b : this.node();
          this.build(item, cur, next);
          cur = next;
        });
        return;
      }
      case 'alt':
        for (const item of e.items) this.build(item, a, b);
        return;
      case 'rep': {
        let cur = a;
        for (let i = 0; i < e.min; i++) {
          const next = this.node();
          this.build(e.item, cur, next);
          cur = next;
        }
        if (e.max === Infinity) {
          const loop = this.node();
          const back = this.node();
          this.eps[cur].push(loop);
          this.build(e.item, loop, back);
          this.eps[back].push(loop);
          this.eps[loop].push(b);
          return;
        }
        for (let i = e.min; i < e.max; i++) {
          const next = this.node();
          this.eps[cur].push(b);
          this.build(e.item, cur, next);
          cur = next;
        }
        this.eps[cur].push(b);
        return;
      }
      case 'call':
        this.calls[a].push({ rule: e.rule, to: b });
        return;
      case 'free': {
        const f = this.node();
        this.free[f] = true;
        this.eps[a].push(f);
        this.sym[f].push({ lo: 0, hi: 255, to: f });
        this.eps[f].push(b);
        return;
      }
      case 'graph': {
        const ids = Array.from({ length: e.nodes }, () => this.node());
        this.eps[a].push(ids[e.start]);
        this.eps[ids[e.end]].push(b);
        for (const g of e.edges) {
          if (g.expr) this.build(g.expr, ids[g.from], ids[g.to]);
          else this.eps[ids[g.from]].push(ids[g.to]);
        }
        return;
      }
    }
  }

  closure(set: Iterable<number>): number[] {
    const seen = new Set<number>();
    const stack = [...set];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      for (const m of this.eps[n]) if (!seen.has(m)) stack.push(m);
    }
    return [...seen].sort((x, y) => x - y);
  }
}

/** Subset construction of one rule's automaton, start -> end. */
function determinize(nfa: Nfa, start: number, end: number, budget: { dfa: number }): RuleDfa {
  const dfa: RuleDfa = { edges: [], calls: [], flags: [] };
  const ids = new Map<string, number>();
  const sets: number[][] = [];
  const intern = (set: number[]): number => {
    const key = set.join(',');
    let id = ids.get(key);
    if (id === undefined) {
      if (++budget.dfa > MAX_NODES) throw new GrammarTooLarge('the grammar is too large');
      id = sets.length;
      ids.set(key, id);
      sets.push(set);
      dfa.edges.push([]);
      dfa.calls.push([]);
      dfa.flags.push((set.includes(end) ? FLAG_ACCEPT : 0) | (set.some((n) => nfa.free[n]) ? FLAG_FREE : 0));
    }
    return id;
  };
  // A subset is keyed by its nodes that matter (those with symbol or call edges, the end, free
  // text): nodes with only empty steps add nothing once their closure is taken, and leaving them
  // out merges states that differ only in how they were reached (a loop's entry and its return).
  const important = (set: number[]) => set.filter((n) => n === end || nfa.free[n] || nfa.sym[n].length > 0 || nfa.calls[n].length > 0);
  const closure = (from: Iterable<number>) => important(nfa.closure(from));
  intern(closure([start]));
  for (let d = 0; d < sets.length; d++) {
    const out: SymEdge[] = [];
    for (const n of sets[d]) out.push(...nfa.sym[n]);
    // Elementary intervals: between consecutive range boundaries every edge either covers all
    // of an interval or none of it.
    const cuts = [...new Set(out.flatMap((e) => [e.lo, e.hi + 1]))].sort((x, y) => x - y);
    let last: SymEdge | undefined;
    for (let i = 0; i + 1 < cuts.length; i++) {
      const lo = cuts[i];
      const hi = cuts[i + 1] - 1;
      const targets = out.filter((e) => e.lo <= lo && hi <= e.hi).map((e) => e.to);
      if (targets.length === 0) {
        last = undefined;
        continue;
      }
      const to = intern(closure(targets));
      if (last && last.to === to && last.hi + 1 === lo) last.hi = hi;
      else {
        last = { lo, hi, to };
        dfa.edges[d].push(last);
      }
    }
    const byRule = new Map<string, number[]>();
    for (const n of sets[d]) {
      for (const c of nfa.calls[n]) {
        const list = byRule.get(c.rule) ?? [];
        list.push(c.to);
        byRule.set(c.rule, list);
      }
    }
    for (const [rule, tos] of byRule) dfa.calls[d].push({ rule, to: intern(closure(tos)) });
  }
  return dfa;
}

/**
 * Drops what cannot finish: a rule is productive when its start reaches its end through
 * symbols and calls of productive rules; a node stays when it reaches its rule's end that way.
 * Returns the live nodes per rule (node 0 is dead for unproductive rules). A worklist over
 * reversed edges keeps this linear in the automaton's size.
 */
function liveNodes(dfas: Map<string, RuleDfa>): Map<string, boolean[]> {
  const live = new Map<string, boolean[]>();
  const rev = new Map<string, number[][]>();
  const revCall = new Map<string, { from: number; rule: string }[][]>();
  const callSites = new Map<string, { caller: string; from: number; to: number }[]>();
  const work: [string, number][] = [];
  for (const [name, d] of dfas) {
    const l = d.flags.map((f) => (f & FLAG_ACCEPT) !== 0);
    live.set(name, l);
    const r: number[][] = d.flags.map(() => []);
    const rc: { from: number; rule: string }[][] = d.flags.map(() => []);
    d.edges.forEach((es, n) => es.forEach((e) => r[e.to].push(n)));
    d.calls.forEach((cs, n) =>
      cs.forEach((c) => {
        rc[c.to].push({ from: n, rule: c.rule });
        const sites = callSites.get(c.rule) ?? [];
        sites.push({ caller: name, from: n, to: c.to });
        callSites.set(c.rule, sites);
      }),
    );
    rev.set(name, r);
    revCall.set(name, rc);
    l.forEach((ok, n) => ok && work.push([name, n]));
  }
  const mark = (rule: string, n: number) => {
    const l = live.get(rule)!;
    if (!l[n]) {
      l[n] = true;
      work.push([rule, n]);
    }
  };
  while (work.length > 0) {
    const [name, n] = work.pop()!;
    for (const p of rev.get(name)![n]) mark(name, p);
    for (const c of revCall.get(name)![n]) if (live.get(c.rule)?.[0]) mark(name, c.from);
    if (n === 0) for (const site of callSites.get(name) ?? []) if (live.get(site.caller)![site.to]) mark(site.caller, site.from);
  }
  return live;
}

export interface Automaton {
  /** The flat form compileGrammar() takes. */
  data: Int32Array;
  nodes: number;
  specials: number[];
}

/** Builds the matcher's automaton; throws an Error when no output satisfies the grammar. */
export function buildAutomaton(g: Grammar): Automaton {
  const specials: number[] = [];
  const specialIndex = (token: number) => {
    let i = specials.indexOf(token);
    if (i < 0) i = specials.push(token) - 1;
    return i;
  };
  const nfaBudget = { nodes: 0 };
  const dfaBudget = { dfa: 0 };
  const dfas = new Map<string, RuleDfa>();
  for (const [name, expr] of g.rules) {
    const nfa = new Nfa(specialIndex, nfaBudget);
    const start = nfa.node();
    const end = nfa.node();
    nfa.build(expr, start, end);
    dfas.set(name, determinize(nfa, start, end, dfaBudget));
  }
  for (const d of dfas.values())
    for (const calls of d.calls)
      for (const c of calls) if (!dfas.has(c.rule)) throw new Error(`grammar: rule ${c.rule} is called but not defined`);
  const live = liveNodes(dfas);
  if (!live.get(g.root)?.[0]) throw new Error('no output satisfies the grammar');

  // Number the live nodes of the rules reachable from the root, root first.
  const base = new Map<string, Map<number, number>>();
  let count = 0;
  const order: string[] = [];
  const pending = [g.root];
  const reach = new Map<string, Set<number>>();
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (reach.has(name)) continue;
    const d = dfas.get(name)!;
    const l = live.get(name)!;
    const seen = new Set<number>([0]);
    const stack = [0];
    while (stack.length > 0) {
      const n = stack.pop()!;
      for (const e of d.edges[n]) if (l[e.to] && !seen.has(e.to)) seen.add(e.to), stack.push(e.to);
      for (const c of d.calls[n]) {
        if (!l[c.to] || !live.get(c.rule)![0]) continue;
        if (!seen.has(c.to)) seen.add(c.to), stack.push(c.to);
        pending.push(c.rule);
      }
    }
    reach.set(name, seen);
    order.push(name);
  }
  for (const name of order) {
    const m = new Map<number, number>();
    for (const n of [...reach.get(name)!].sort((x, y) => x - y)) m.set(n, count++);
    base.set(name, m);
  }
  const edges: number[] = [];
  const calls: number[] = [];
  const flags: number[] = new Array<number>(count);
  for (const name of order) {
    const d = dfas.get(name)!;
    const m = base.get(name)!;
    for (const [n, id] of m) {
      flags[id] = d.flags[n];
      for (const e of d.edges[n]) {
        const to = m.get(e.to);
        if (to !== undefined) edges.push(id, e.lo, e.hi, to);
      }
      for (const c of d.calls[n]) {
        const to = m.get(c.to);
        const callee = base.get(c.rule)?.get(0);
        if (to !== undefined && callee !== undefined) calls.push(id, callee, to);
      }
    }
  }
  const header = [MAGIC, count, 0, specials.length, edges.length / 4, calls.length / 3];
  const data = Int32Array.from([...header, ...specials, ...edges, ...calls, ...flags]);
  return { data, nodes: count, specials };
}
