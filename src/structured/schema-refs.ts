// Which "$ref"s of a schema can recur (lead back to themselves through the references inside
// their targets). Only those need a recursion count: a reference that cannot recur is entered
// at most once on any path, so counting it would only make a definition reached along two
// paths compile twice (a chain of shared definitions would double at every link).
import { isObject } from './schema-errors.js';

/** Nodes of the schema document the analysis may visit; past it every reference counts as recursive. */
const MAX_VISITS = 2_000_000;

/** The local references that lie on a cycle; undefined when the document is too large to tell (treat all as recursive). */
export function recursivePointers(document: unknown): Set<string> | undefined {
  const budget = { visits: 0 };
  const pointers = refsBelow(document, budget);
  if (!pointers) return undefined;
  const graph = new Map<string, string[]>();
  for (const p of pointers) {
    const target = resolve(document, p);
    const below = target === undefined ? [] : refsBelow(target, budget);
    if (!below) return undefined;
    graph.set(p, [...below].filter((q) => pointers.has(q)));
  }
  return onCycles(graph);
}

/** The distinct local "$ref" strings anywhere below a node. */
function refsBelow(node: unknown, budget: { visits: number }): Set<string> | undefined {
  const out = new Set<string>();
  const stack = [node];
  while (stack.length > 0) {
    const n = stack.pop();
    if (++budget.visits > MAX_VISITS) return undefined;
    if (Array.isArray(n)) for (const v of n) stack.push(v);
    else if (isObject(n)) {
      for (const [k, v] of Object.entries(n)) {
        if (k === '$ref' && typeof v === 'string' && v.startsWith('#')) out.add(v);
        else if (typeof v === 'object' && v !== null) stack.push(v);
      }
    }
  }
  return out;
}

function resolve(document: unknown, pointer: string): unknown {
  if (pointer === '#') return document;
  if (!pointer.startsWith('#/')) return undefined;
  let node: unknown = document;
  for (const raw of pointer.slice(2).split('/')) {
    let key: string;
    try {
      key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    } catch {
      return undefined;
    }
    if (Array.isArray(node) && /^\d+$/.test(key)) node = node[Number(key)];
    else if (isObject(node) && Object.hasOwn(node, key)) node = node[key];
    else return undefined;
  }
  return node;
}

/** Nodes on a cycle: members of strongly connected components of two or more, or with an edge to themselves (Tarjan, iteratively). */
function onCycles(graph: Map<string, string[]>): Set<string> {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out = new Set<string>();
  let next = 0;
  for (const root of graph.keys()) {
    if (index.has(root)) continue;
    const frames: { node: string; edge: number }[] = [{ node: root, edge: 0 }];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (frames.length > 0) {
      const f = frames[frames.length - 1];
      const edges = graph.get(f.node)!;
      if (f.edge < edges.length) {
        const w = edges[f.edge++];
        if (!index.has(w)) {
          index.set(w, next);
          low.set(w, next++);
          stack.push(w);
          onStack.add(w);
          frames.push({ node: w, edge: 0 });
        } else if (onStack.has(w)) low.set(f.node, Math.min(low.get(f.node)!, index.get(w)!));
        continue;
      }
      frames.pop();
      if (frames.length > 0) {
        const parent = frames[frames.length - 1].node;
        low.set(parent, Math.min(low.get(parent)!, low.get(f.node)!));
      }
      if (low.get(f.node) === index.get(f.node)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== f.node);
        if (component.length > 1 || edges.includes(f.node)) for (const c of component) out.add(c);
      }
    }
  }
  return out;
}
