// vLLM's structural tags (response_format {type: "structural_tag", structures, triggers}, as
// xgrammar defines them): the answer is free text, except that wherever one of the triggers
// appears, the text from there on is one of the structures whose `begin` starts with it: its
// begin string, a JSON value of its schema, its end string; then free text again. Agents use it
// for tool calls in formats of their own (`<function=name>{...}</function>`).
//
// The grammar: root ::= F (S F)*, where S is any structure and F is text in which no trigger
// occurs. F is an automaton over bytes (Aho-Corasick over the triggers): its states are the
// triggers' prefixes that end the text so far, every byte moves to the longest such prefix, and
// no move completes a trigger; any state may end F. A trigger can then only be written as the
// start of a structure (the matcher follows both readings until one fails).
import { alt, bytes, lit, literalTrie, seq, star, walkTrie, type ByteRange, type Expr, type GraphEdge, type RuleSet } from './grammar.js';
import { SchemaCompiler } from './schema-compiler.js';
import { SchemaError } from './schema-errors.js';

export interface StructuralTagSpec {
  structures: { begin: string; schema?: unknown; end: string }[];
  triggers: string[];
}

/** The most trigger bytes a request may send: F has one state per prefix. */
const MAX_TRIGGER_BYTES = 4096;

const utf8 = new TextEncoder();

export function structuralTagExpr(rules: RuleSet, spec: StructuralTagSpec, budget: { parts: number }): Expr {
  const triggers = spec.triggers.map((t) => utf8.encode(t));
  if (triggers.some((t) => t.length === 0)) throw new SchemaError('a trigger is the empty string, which every text contains; send at least one character', '/triggers');
  if (triggers.reduce((n, t) => n + t.length, 0) > MAX_TRIGGER_BYTES)
    throw new SchemaError(`the triggers hold more than ${MAX_TRIGGER_BYTES} bytes; send shorter ones`, '/triggers');
  spec.structures.forEach((s, i) => {
    if (!spec.triggers.some((t) => s.begin.startsWith(t)))
      throw new SchemaError(`structures[${i}].begin ${JSON.stringify(s.begin)} does not start with any of the triggers, so it could never be written; start it with one`, `/structures/${i}/begin`);
  });
  const free = rules.define('st:free', () => textWithout(triggers));
  const structures = spec.structures.map((s, i) => {
    const value = new SchemaCompiler(rules, `st${i}:`, s.schema ?? true, budget).compileRoot();
    return seq(lit(s.begin), value, lit(s.end));
  });
  return seq(free, star(seq(alt(...structures), free)));
}

/** Any bytes in which none of `patterns` occurs (each non-empty). */
function textWithout(patterns: Uint8Array[]): Expr {
  // The trie of the patterns (grammar.ts's, as literal choices use it): node 0 is the empty prefix.
  const { sorted, nodes } = literalTrie(patterns);
  const next = Array.from({ length: nodes }, () => new Map<number, number>());
  const complete = new Array<boolean>(nodes).fill(false);
  walkTrie(
    sorted,
    (from, byte, to) => next[from].set(byte, to),
    (node) => (complete[node] = true),
  );
  // Failure links, breadth first: a node whose proper suffix completes a pattern completes one too.
  const fail = new Array<number>(next.length).fill(0);
  const queue = [...next[0].values()];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const [b, to] of next[node]) {
      let f = fail[node];
      while (f !== 0 && !next[f].has(b)) f = fail[f];
      const candidate = next[f].get(b);
      fail[to] = candidate !== undefined && candidate !== to ? candidate : 0;
      complete[to] ||= complete[fail[to]];
      queue.push(to);
    }
  }
  const step = (node: number, b: number): number => {
    let n = node;
    while (n !== 0 && !next[n].has(b)) n = fail[n];
    return next[n].get(b) ?? 0;
  };
  // One graph node per trie node that completes no pattern, and an end node after them all.
  const live = next.map((_, node) => node).filter((node) => !complete[node]);
  const index = new Map(live.map((node, i) => [node, i]));
  const end = live.length;
  const edges: GraphEdge[] = [];
  for (const node of live) {
    const byTarget = new Map<number, ByteRange[]>();
    for (let b = 0; b < 256; b++) {
      const to = index.get(step(node, b));
      if (to === undefined) continue;  // this byte completes a pattern
      const ranges = byTarget.get(to) ?? [];
      const last = ranges.at(-1);
      if (last && last[1] === b - 1) ranges[ranges.length - 1] = [last[0], b];
      else ranges.push([b, b]);
      byTarget.set(to, ranges);
    }
    for (const [to, ranges] of byTarget) edges.push({ from: index.get(node)!, to, expr: bytes(...ranges) });
    edges.push({ from: index.get(node)!, to: end });
  }
  return { k: 'graph', nodes: live.length + 1, start: 0, end, edges };
}
