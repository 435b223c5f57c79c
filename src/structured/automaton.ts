// Grammar -> the flat automaton the native matcher runs (native/src/grammar/grammar.h): each
// rule becomes a nondeterministic automaton (Thompson's construction), is made deterministic
// over bytes, special tokens and calls (subset construction), then automaton-output.ts prunes
// and writes them out. A rule that is a trie of literals (a large enum) becomes states directly.
//
// Every step is bounded, so no grammar can hold the event loop for long or grow without end:
// the written-out size of the rules (checked before anything is built), the automaton's states,
// the subset construction's work, and a deadline on the whole. Past a bound the grammar is
// refused with GrammarTooLarge, naming the rule (and so the schema part) it was building.
// Edges live in flat number arrays rather than objects: the garbage collector, not the
// algorithm, was most of the time on large grammars.
import { FLAG_ACCEPT, FLAG_FREE, flatten, rows, type Automaton, type RuleDfa } from './automaton-output.js';
import { exprSize, walkTrie, type Expr, type Grammar } from './grammar.js';

export type { Automaton } from './automaton-output.js';

const BYTE_SYMBOLS = 256;

/** Past this many automaton states a grammar is refused (the schema is too large to enforce). */
export const MAX_NODES = 400_000;
/** Largest written-out size (exprSize: states and edges before subset construction) of a whole grammar. */
export const MAX_GRAMMAR_SIZE = 1_000_000;
/**
 * Subset construction steps (states made, nodes of the subsets visited, edges and intervals
 * looked at) for a whole grammar: well under a second of one core. A few nested or overlapping
 * quantifiers can ask for exponentially many subsets; this is what stops them.
 */
export const MAX_BUILD_WORK = 6_000_000;
/** Default wall-clock bound on building one grammar, for whatever the bounds above let through on a busy machine. */
export const DEFAULT_BUILD_DEADLINE_MS = 500;

export class GrammarTooLarge extends Error {
  constructor(
    /** What was exceeded, with the limit ("written out, it has about 2,004,003 states; the limit is 1,000,000"). */
    readonly reason: string,
    /** The rule being built, when the bound was reached inside one. */
    readonly rule?: string,
    /** The wall-clock deadline, not a size: the same grammar may build on a quieter machine. */
    readonly timedOut = false,
  ) {
    super(`the grammar is too large: ${reason}`);
  }
}

export interface BuildOptions {
  /** Give up (GrammarTooLarge) after this many milliseconds. */
  deadlineMs?: number;
}

interface Budget {
  nfa: number;
  dfa: number;
  work: number;
  deadline: number;
  rule: string;
}

/** Work units a new subset state costs beyond its nodes (its arrays, key and edges): measured, about 50 of the small steps. */
const STATE_WORK = 50;

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function checkBudget(budget: Budget): void {
  if (budget.work > MAX_BUILD_WORK)
    throw new GrammarTooLarge(`building its automaton takes more than ${fmt(MAX_BUILD_WORK)} steps (nested or overlapping repetitions?)`, budget.rule);
  if (performance.now() > budget.deadline) throw new GrammarTooLarge('building its automaton takes too long', budget.rule, true);
}

/** Numbers the rules (call targets) and special tokens (symbols 256 + index) as they are met. */
class Names {
  readonly rules: string[] = [];
  readonly specials: number[] = [];
  private readonly ruleIds = new Map<string, number>();

  rule(name: string): number {
    let i = this.ruleIds.get(name);
    if (i === undefined) this.ruleIds.set(name, (i = this.rules.push(name) - 1));
    return i;
  }

  special(token: number): number {
    let i = this.specials.indexOf(token);
    if (i < 0) i = this.specials.push(token) - 1;
    return i;
  }
}

/** A RuleDfa as the subset construction grows it. */
interface GrowingDfa extends RuleDfa {
  flags: number[];
  edgeStart: number[];
  lo: number[];
  hi: number[];
  to: number[];
  callStart: number[];
  callee: number[];
  ret: number[];
}

function emptyDfa(): GrowingDfa {
  return { flags: [], edgeStart: [0], lo: [], hi: [], to: [], callStart: [0], callee: [], ret: [] };
}

/** Thompson's construction into flat edge lists, then rows by source node for the subset construction. */
class Nfa {
  count = 0;
  private readonly epsFrom: number[] = [];
  readonly epsTo: number[] = [];
  private readonly symFrom: number[] = [];
  readonly symLo: number[] = [];
  readonly symHi: number[] = [];
  readonly symTo: number[] = [];
  private readonly callFrom: number[] = [];
  readonly callRule: number[] = [];
  readonly callTo: number[] = [];
  private readonly freeNodes: number[] = [];

  // Filled by finish().
  eps!: { start: Int32Array; items: Int32Array };
  sym!: { start: Int32Array; items: Int32Array };
  calls!: { start: Int32Array; items: Int32Array };
  free!: Uint8Array;
  /** Nodes a subset is keyed by: the end, free text, and those with symbol or call edges. */
  important!: Uint8Array;
  private marks!: Int32Array;
  private epoch = 0;
  private readonly stack: number[] = [];

  constructor(
    private readonly names: Names,
    private readonly budget: Budget,
  ) {}

  node(): number {
    if (++this.budget.nfa > MAX_GRAMMAR_SIZE * 2) throw new GrammarTooLarge(`it has more than ${fmt(MAX_GRAMMAR_SIZE * 2)} states before they are merged`, this.budget.rule);
    return this.count++;
  }

  private epsilon(a: number, b: number): void {
    this.epsFrom.push(a);
    this.epsTo.push(b);
  }

  private symbol(a: number, lo: number, hi: number, b: number): void {
    this.symFrom.push(a);
    this.symLo.push(lo);
    this.symHi.push(hi);
    this.symTo.push(b);
  }

  private call(a: number, rule: string, b: number): void {
    this.callFrom.push(a);
    this.callRule.push(this.names.rule(rule));
    this.callTo.push(b);
  }

  /**
   * Adds paths a -> b that spell `e`. Invariant: no edge is added into `a` or out of `b`, so
   * several expressions may share the same a and b (alternatives, graph edges).
   */
  build(e: Expr, a: number, b: number): void {
    switch (e.k) {
      case 'bytes':
        for (const [lo, hi] of e.ranges) this.symbol(a, lo, hi, b);
        return;
      case 'special': {
        const s = BYTE_SYMBOLS + this.names.special(e.token);
        this.symbol(a, s, s, b);
        return;
      }
      case 'seq': {
        if (e.items.length === 0) {
          this.epsilon(a, b);
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
        const item: Expr = e.viaRule !== undefined ? { k: 'call', rule: e.viaRule } : e.item;
        let cur = a;
        for (let i = 0; i < e.min; i++) {
          const next = this.node();
          this.build(item, cur, next);
          cur = next;
        }
        if (e.max === Infinity) {
          const loop = this.node();
          const back = this.node();
          this.epsilon(cur, loop);
          this.build(item, loop, back);
          this.epsilon(back, loop);
          this.epsilon(loop, b);
          return;
        }
        for (let i = e.min; i < e.max; i++) {
          const next = this.node();
          this.epsilon(cur, b);
          this.build(item, cur, next);
          cur = next;
        }
        this.epsilon(cur, b);
        return;
      }
      case 'call':
        this.call(a, e.rule, b);
        return;
      case 'free': {
        const f = this.node();
        this.freeNodes.push(f);
        this.epsilon(a, f);
        this.symbol(f, 0, 255, f);
        this.epsilon(f, b);
        return;
      }
      case 'literals': {
        const ids = [a];
        walkTrie(
          e.sorted,
          (from, byte, to) => {
            ids[to] = this.node();
            this.symbol(ids[from], byte, byte, ids[to]);
          },
          (node) => this.epsilon(ids[node], b),
        );
        return;
      }
      case 'graph': {
        const ids = Array.from({ length: e.nodes }, () => this.node());
        this.epsilon(a, ids[e.start]);
        this.epsilon(ids[e.end], b);
        for (const g of e.edges) {
          if (g.expr) this.build(g.expr, ids[g.from], ids[g.to]);
          else this.epsilon(ids[g.from], ids[g.to]);
        }
        return;
      }
    }
  }

  finish(end: number): void {
    const n = this.count;
    this.eps = rows(n, this.epsFrom);
    this.sym = rows(n, this.symFrom);
    this.calls = rows(n, this.callFrom);
    this.free = new Uint8Array(n);
    for (const f of this.freeNodes) this.free[f] = 1;
    this.important = new Uint8Array(n);
    for (let i = 0; i < n; i++)
      this.important[i] = i === end || this.free[i] || this.sym.start[i + 1] > this.sym.start[i] || this.calls.start[i + 1] > this.calls.start[i] ? 1 : 0;
    this.marks = new Int32Array(n);
    this.budget.work += n + this.symFrom.length + this.epsFrom.length;
  }

  /**
   * The important nodes reachable from `from` (consumed) through empty steps, ascending: what
   * a subset is keyed by. Nodes with only empty steps add nothing once the closure is taken,
   * and leaving them out merges states that differ only in how they were reached.
   */
  closure(from: number[]): number[] {
    const mark = ++this.epoch;
    const out: number[] = [];
    const stack = this.stack;
    for (const f of from) stack.push(f);
    let visited = 0;
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (this.marks[n] === mark) continue;
      this.marks[n] = mark;
      visited++;
      if (this.important[n]) out.push(n);
      for (let j = this.eps.start[n]; j < this.eps.start[n + 1]; j++) {
        const m = this.epsTo[this.eps.items[j]];
        if (this.marks[m] !== mark) stack.push(m);
      }
    }
    this.budget.work += visited;
    return out.length > 1 ? out.sort((x, y) => x - y) : out;
  }
}

/** Subset construction of one rule's automaton, start -> end. */
function determinize(nfa: Nfa, start: number, end: number, budget: Budget): GrowingDfa {
  const dfa = emptyDfa();
  // Subsets of one or two nodes (most of them) are keyed by a number, larger ones by a string.
  const small = new Map<number, number>();
  const large = new Map<string, number>();
  const sets: number[][] = [];
  const intern = (set: number[]): number => {
    const numeric = set.length === 1 ? set[0] : set.length === 2 ? (set[0] + 1) * 2 ** 22 + set[1] : undefined;
    const key = numeric === undefined ? set.join(',') : undefined;
    let id = numeric !== undefined ? small.get(numeric) : large.get(key!);
    if (id === undefined) {
      if (++budget.dfa > MAX_NODES) throw new GrammarTooLarge(`its automaton has more than ${fmt(MAX_NODES)} states`, budget.rule);
      budget.work += STATE_WORK + set.length;
      id = sets.length;
      if (numeric !== undefined) small.set(numeric, id);
      else large.set(key!, id);
      sets.push(set);
      let flags = 0;
      for (const n of set) flags |= (n === end ? FLAG_ACCEPT : 0) | (nfa.free[n] ? FLAG_FREE : 0);
      dfa.flags.push(flags);
    }
    return id;
  };
  intern(nfa.closure([start]));
  const out: number[] = [];
  const cuts: number[] = [];
  let active: number[] = [];
  for (let d = 0; d < sets.length; d++) {
    if ((d & 63) === 63) checkBudget(budget);
    out.length = 0;
    for (const n of sets[d]) for (let j = nfa.sym.start[n]; j < nfa.sym.start[n + 1]; j++) out.push(nfa.sym.items[j]);
    budget.work += sets[d].length + out.length;
    if (out.length === 1) {
      const e = out[0];
      dfa.lo.push(nfa.symLo[e]);
      dfa.hi.push(nfa.symHi[e]);
      dfa.to.push(intern(nfa.closure([nfa.symTo[e]])));
    } else if (out.length > 1) {
      // Elementary intervals: between consecutive range boundaries every edge either covers
      // all of an interval or none of it. A sweep over the edges sorted by their start keeps
      // the ones covering the current interval.
      out.sort((x, y) => nfa.symLo[x] - nfa.symLo[y]);
      cuts.length = 0;
      for (const e of out) cuts.push(nfa.symLo[e], nfa.symHi[e] + 1);
      cuts.sort((x, y) => x - y);
      active.length = 0;
      let next = 0;
      let lastTo = -1;
      for (let i = 0; i + 1 < cuts.length; i++) {
        const lo = cuts[i];
        const hi = cuts[i + 1] - 1;
        if (hi < lo) continue; // a repeated boundary
        if (active.some((e) => nfa.symHi[e] < lo)) active = active.filter((e) => nfa.symHi[e] >= lo);
        while (next < out.length && nfa.symLo[out[next]] <= lo) active.push(out[next++]);
        budget.work += active.length + 1;
        if (active.length === 0) {
          lastTo = -1;
          continue;
        }
        const to = intern(nfa.closure(active.map((e) => nfa.symTo[e])));
        const k = dfa.lo.length - 1;
        if (to === lastTo && dfa.hi[k] + 1 === lo) dfa.hi[k] = hi;
        else {
          dfa.lo.push(lo);
          dfa.hi.push(hi);
          dfa.to.push(to);
          lastTo = to;
        }
      }
    }
    dfa.edgeStart.push(dfa.lo.length);
    // Calls, grouped by callee: one target subset per callee.
    let byRule: Map<number, number[]> | undefined;
    for (const n of sets[d]) {
      for (let j = nfa.calls.start[n]; j < nfa.calls.start[n + 1]; j++) {
        const c = nfa.calls.items[j];
        byRule ??= new Map();
        const list = byRule.get(nfa.callRule[c]);
        if (list) list.push(nfa.callTo[c]);
        else byRule.set(nfa.callRule[c], [nfa.callTo[c]]);
      }
    }
    if (byRule)
      for (const [rule, tos] of byRule) {
        dfa.callee.push(rule);
        dfa.ret.push(intern(nfa.closure(tos)));
      }
    dfa.callStart.push(dfa.callee.length);
  }
  return dfa;
}

/**
 * A rule that is a trie of literals (a large enum) is already an automaton: its nodes become
 * states one for one, and the nodes where a literal ends accept. undefined for other rules.
 * Typed arrays throughout: a trie may have a few hundred thousand nodes.
 */
function directDfa(e: Expr, budget: Budget): RuleDfa | undefined {
  if (e.k !== 'literals') return undefined;
  const n = e.nodes;
  budget.dfa += n;
  if (budget.dfa > MAX_NODES) throw new GrammarTooLarge(`its automaton has more than ${fmt(MAX_NODES)} states`, budget.rule);
  const flags = new Int32Array(n);
  // Every node but the root has one incoming edge: from parent[t], on byte label[t].
  const parent = new Int32Array(n);
  const label = new Int32Array(n);
  walkTrie(
    e.sorted,
    (from, byte, to) => {
      parent[to] = from;
      label[to] = byte;
    },
    (node) => (flags[node] = FLAG_ACCEPT),
  );
  const edgeStart = new Int32Array(n + 1);
  for (let t = 1; t < n; t++) edgeStart[parent[t] + 1]++;
  for (let d = 0; d < n; d++) edgeStart[d + 1] += edgeStart[d];
  // A node's children are numbered in byte order, so filling by child number keeps its edges sorted.
  const fill = edgeStart.slice(0, n);
  const lo = new Int32Array(Math.max(0, n - 1));
  const to = new Int32Array(lo.length);
  for (let t = 1; t < n; t++) {
    const k = fill[parent[t]]++;
    lo[k] = label[t];
    to[k] = t;
  }
  budget.work += n;
  return { flags, edgeStart, lo, hi: lo, to, callStart: new Int32Array(n + 1), callee: [], ret: [], allLive: true };
}

/** The grammar's rules plus those that counted repetitions call (`viaRule`), root first. */
function allRules(g: Grammar): Map<string, Expr> {
  const rules = new Map(g.rules);
  const seen = new WeakSet<Expr>();
  const visit = (e: Expr): void => {
    if (seen.has(e)) return;
    seen.add(e);
    switch (e.k) {
      case 'seq':
      case 'alt':
        for (const item of e.items) visit(item);
        return;
      case 'rep':
        if (e.viaRule !== undefined && !rules.has(e.viaRule)) rules.set(e.viaRule, e.item);
        visit(e.item);
        return;
      case 'graph':
        for (const edge of e.edges) if (edge.expr) visit(edge.expr);
        return;
    }
  };
  for (const e of [...rules.values()]) visit(e);
  return rules;
}

/** Builds the matcher's automaton; throws an Error when no output satisfies the grammar, GrammarTooLarge past a bound. */
export function buildAutomaton(g: Grammar, options: BuildOptions = {}): Automaton {
  const rules = allRules(g);
  const budget: Budget = { nfa: 0, dfa: 0, work: 0, deadline: performance.now() + (options.deadlineMs ?? DEFAULT_BUILD_DEADLINE_MS), rule: g.root };
  // Sized before anything is built; the largest rule is the one to name.
  let total = 0;
  let largest: [string, number] = [g.root, 0];
  for (const [name, expr] of rules) {
    const size = exprSize(expr);
    total += size;
    if (size > largest[1]) largest = [name, size];
  }
  if (total > MAX_GRAMMAR_SIZE)
    throw new GrammarTooLarge(`written out, its grammar has about ${fmt(total)} states; the limit is ${fmt(MAX_GRAMMAR_SIZE)}`, largest[0]);

  const names = new Names();
  const root = names.rule(g.root);
  const dfas: RuleDfa[] = [];
  // Rules are numbered as they are met (the root first, then callees), and built in that order.
  for (let r = 0; r < names.rules.length; r++) {
    const name = names.rules[r];
    const expr = rules.get(name);
    if (expr === undefined) throw new Error(`grammar: rule ${name} is called but not defined`);
    budget.rule = name;
    checkBudget(budget);
    let dfa = directDfa(expr, budget);
    if (!dfa) {
      const nfa = new Nfa(names, budget);
      const start = nfa.node();
      const end = nfa.node();
      nfa.build(expr, start, end);
      nfa.finish(end);
      dfa = determinize(nfa, start, end, budget);
    }
    dfas.push(dfa);
  }
  checkBudget(budget);
  return flatten(dfas, root, names.specials);
}
