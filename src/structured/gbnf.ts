// vLLM's guided_grammar: a grammar in GBNF (the EBNF of llama.cpp and xgrammar, which vLLM's
// default backend takes) -> the rules of the answer's grammar. The answer is what rule `root`
// matches, as raw text.
//
//   root   ::= expr                       # a comment
//   expr   ::= term (("+" | "-") term)*
//   term   ::= [0-9]+ | "(" expr ")"
//
// Supported: rules `name ::= ...` over any number of lines, "literals" (and 'literals') with the
// escapes \n \r \t \\ \" \' \xHH \uHHHH \UHHHHHHHH, classes [a-z] [^...], ".", rule names,
// groups, "|", the quantifiers * + ? {n} {n,} {n,m}, and /regular expressions/ (matched whole, as
// Lark's terminals are; lark.ts turns a Lark grammar into this form). Refused with the place
// named: a rule used and not defined, one defined twice, no `root`, and left recursion (the
// matcher reads left to right and would never consume a byte).
import { complement, dotChars, normalize, rawCharOf, type CharSet } from './char-set.js';
import { alt, call, lit, rep, seq, type Expr } from './grammar.js';
import { MAX_REPEAT, RegexError, wholeTextRegex } from './regex.js';

export class GbnfError extends Error {}

// Sticky patterns, matched where the parser stands (lookAt): the grammar is never copied to look ahead.
const blank = /\s+|#[^\n]*/y;
const nameAt = /[a-zA-Z_][a-zA-Z0-9_-]*/y;
const ruleStart = /[a-zA-Z_][a-zA-Z0-9_-]*\s*::=/y;
const larkColon = /\s*:(?!:=)/y;
const count = /\{\s*(\d+)\s*(,\s*(\d*)\s*)?\}/y;

/** The rules of a GBNF grammar, each name as written; `root` is the start. */
export function parseGbnf(text: string): Map<string, Expr> {
  const p = new GbnfParser(text);
  const rules = p.rules();
  if (!rules.has('root')) throw new GbnfError('the grammar has no rule "root", where the answer starts: define `root ::= ...`');
  for (const [name, at] of p.used) if (!rules.has(name)) throw new GbnfError(`rule "${name}" is used at ${p.where(at)} but never defined`);
  const cycle = leftRecursion(rules);
  if (cycle) throw new GbnfError(`left recursion: ${cycle.join(' -> ')} can call itself before reading anything; write the repetition with * or + instead (e.g. \`expr ::= term ("+" term)*\`)`);
  return rules;
}

class GbnfParser {
  private pos = 0;
  /** Each rule name used, and where first (an offset: line and column are counted only for a message). */
  readonly used = new Map<string, number>();

  constructor(private readonly src: string) {}

  rules(): Map<string, Expr> {
    const out = new Map<string, Expr>();
    this.skip();
    if (this.pos === this.src.length) throw new GbnfError('the grammar is empty: define `root ::= ...`');
    while (this.pos < this.src.length) {
      const at = this.pos;
      const name = this.name();
      if (name === undefined) throw this.error('expected a rule name');
      this.skip();
      if (!this.src.startsWith('::=', this.pos)) {
        if (this.src[this.pos] === ':') throw new GbnfError(`${this.where(at)}: "${name}:" is how Lark writes a rule; in a grammar with GBNF rules write \`${name} ::= ...\``);
        throw this.error(`expected "::=" after the rule name "${name}"`);
      }
      this.pos += 3;
      if (out.has(name)) throw new GbnfError(`${this.where(at)}: rule "${name}" is defined twice`);
      out.set(name, this.alternatives(false));
    }
    return out;
  }

  /** `a b | c d`, up to ")" (in a group) or the next rule's `name ::=`. */
  private alternatives(inGroup: boolean): Expr {
    const branches: Expr[] = [this.sequence(inGroup)];
    while (this.src[this.pos] === '|') {
      this.pos++;
      branches.push(this.sequence(inGroup));
    }
    return alt(...branches);
  }

  private sequence(inGroup: boolean): Expr {
    const items: Expr[] = [];
    for (;;) {
      this.skip();
      const c = this.src[this.pos];
      if (c === undefined || c === '|' || (c === ')' && inGroup)) break;
      if (this.atRuleStart()) break; // the next rule (in a group: one left open, said by the caller)
      items.push(this.quantified(this.atom()));
    }
    return seq(...items);
  }

  private atom(): Expr {
    const c = this.src[this.pos];
    if (c === '"' || c === "'") return lit(this.literal(c));
    if (c === '/') return this.regex();
    if (c === '[') return rawCharOf(this.charClass());
    if (c === '.') {
      this.pos++;
      return rawCharOf(dotChars);
    }
    if (c === '(') {
      this.pos++;
      const inner = this.alternatives(true);
      this.skip();
      if (this.src[this.pos] !== ')') throw this.error('a group is not closed with ")"');
      this.pos++;
      return inner;
    }
    const at = this.pos;
    const name = this.name();
    if (name === undefined) throw this.error(c === ')' ? 'a ")" without its "("' : `unexpected ${JSON.stringify(c)}`);
    if (this.lookAt(larkColon))
      throw new GbnfError(`${this.where(at)}: "${name}:" is how Lark writes a rule; in a grammar with GBNF rules write \`${name} ::= ...\``);
    if (!this.used.has(name)) this.used.set(name, at);
    return call(ruleName(name));
  }

  private quantified(e: Expr): Expr {
    for (;;) {
      const c = this.src[this.pos];
      if (c === '*') e = rep(e, 0, Infinity);
      else if (c === '+') e = rep(e, 1, Infinity);
      else if (c === '?') e = rep(e, 0, 1);
      else if (c === '{') {
        const m = this.lookAt(count);
        if (!m) throw this.error('expected a count {n}, {n,} or {n,m}');
        const min = Number(m[1]);
        const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (min > max) throw this.error(`the count ${m[0]} is out of order`);
        if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw this.error(`counts above ${MAX_REPEAT} are not supported`);
        this.pos += m[0].length - 1;
        e = rep(e, min, max);
      } else return e;
      this.pos++;
    }
  }

  private literal(quote: string): string {
    const at = this.pos;
    this.pos++;
    let out = '';
    for (;;) {
      const c = this.src[this.pos];
      if (c === undefined || c === '\n') throw new GbnfError(`${this.where(at)}: a literal is not closed with ${quote}`);
      this.pos++;
      if (c === quote) return out;
      out += c === '\\' ? String.fromCodePoint(this.escape()) : c;
    }
  }

  /** `/pattern/`: text the regular expression matches whole (Lark's terminals; regex.ts says what it takes). */
  private regex(): Expr {
    const at = this.pos;
    const start = ++this.pos;
    for (;;) {
      const c = this.src[this.pos];
      if (c === undefined || c === '\n') throw new GbnfError(`${this.where(at)}: a regular expression is not closed with "/"`);
      this.pos++;
      if (c === '\\') this.pos++;
      else if (c === '/') break;
    }
    const pattern = this.src.slice(start, this.pos - 1);
    if (/^[a-z]/i.test(this.src[this.pos] ?? '')) throw this.error('regular-expression flags are not supported; write the cases out (e.g. [Aa])');
    try {
      return wholeTextRegex(pattern);
    } catch (err) {
      if (err instanceof RegexError) throw new GbnfError(`${this.where(at)}: /${pattern}/: ${err.message}`);
      throw err;
    }
  }

  /** After "\": the code point it stands for. */
  private escape(): number {
    const c = this.src[this.pos++];
    const simple: Record<string, number> = { n: 0x0a, r: 0x0d, t: 0x09, '\\': 0x5c, '"': 0x22, "'": 0x27, '[': 0x5b, ']': 0x5d, '-': 0x2d, '^': 0x5e, '/': 0x2f };
    if (c !== undefined && simple[c] !== undefined) return simple[c];
    const digits = c === 'x' ? 2 : c === 'u' ? 4 : c === 'U' ? 8 : 0;
    const hex = this.src.slice(this.pos, this.pos + digits);
    if (digits === 0 || !new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(hex)) throw this.error(`the escape "\\${c ?? ''}" is not supported`);
    this.pos += digits;
    const code = parseInt(hex, 16);
    if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) throw this.error(`"\\${c}${hex}" is not a character`);
    return code;
  }

  private charClass(): CharSet {
    const at = this.pos;
    this.pos++; // [
    const negated = this.src[this.pos] === '^';
    if (negated) this.pos++;
    const parts: [number, number][] = [];
    for (;;) {
      const c = this.src[this.pos];
      if (c === undefined || c === '\n') throw new GbnfError(`${this.where(at)}: a character class is not closed with "]"`);
      if (c === ']') {
        this.pos++;
        break;
      }
      const lo = this.classChar();
      if (this.src[this.pos] === '-' && this.src[this.pos + 1] !== ']') {
        this.pos++;
        const hi = this.classChar();
        if (lo > hi) throw this.error('a range in a character class is out of order');
        parts.push([lo, hi]);
      } else parts.push([lo, lo]);
    }
    const set = normalize(parts);
    return negated ? complement(set) : set;
  }

  private classChar(): number {
    const c = this.src.codePointAt(this.pos)!;
    this.pos += c > 0xffff ? 2 : 1;
    return c === 0x5c ? this.escape() : c;
  }

  private name(): string | undefined {
    const m = this.lookAt(nameAt);
    if (!m) return undefined;
    this.pos += m[0].length;
    return m[0];
  }

  /** Whether the next thing is `name ::=`, which starts a new rule. */
  private atRuleStart(): boolean {
    return this.lookAt(ruleStart) !== null;
  }

  /** The sticky pattern's match where the parser stands, or null. */
  private lookAt(pattern: RegExp): RegExpExecArray | null {
    pattern.lastIndex = this.pos;
    return pattern.exec(this.src);
  }

  /** Skips white space (newlines included) and # comments. */
  private skip(): void {
    for (;;) {
      const m = this.lookAt(blank);
      if (!m) return;
      this.pos += m[0].length;
    }
  }

  /** "line L, column C" of an offset (the current one by default). */
  where(at = this.pos): string {
    const before = this.src.slice(0, at);
    const line = before.split('\n').length;
    return `line ${line}, column ${at - before.lastIndexOf('\n')}`;
  }

  private error(message: string): GbnfError {
    return new GbnfError(`${this.where()}: ${message}`);
  }
}

/** The name a GBNF rule takes among the answer's rules (apart from the compiler's own). */
export function ruleName(name: string): string {
  return `gbnf:${name}`;
}

/**
 * A chain of rules each of which can call the next before reading a byte, back to the first;
 * undefined when there is none. Nullable rules are found first (a rule after a nullable prefix
 * is still at the start).
 */
function leftRecursion(rules: Map<string, Expr>): string[] | undefined {
  const nullable = new Set<string>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const [name, e] of rules)
      if (!nullable.has(name) && canBeEmpty(e, nullable)) {
        nullable.add(name);
        changed = true;
      }
  }
  const first = new Map<string, Set<string>>();
  for (const [name, e] of rules) first.set(name, startCalls(e, nullable, new Set()));
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'open') return [...path.slice(path.indexOf(name)), name];
    state.set(name, 'open');
    path.push(name);
    for (const next of first.get(name) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of rules.keys()) {
    const cycle = visit(name);
    if (cycle) return cycle;
  }
  return undefined;
}

const fromRule = (rule: string) => rule.slice('gbnf:'.length);

function canBeEmpty(e: Expr, nullable: Set<string>): boolean {
  switch (e.k) {
    case 'seq':
      return e.items.every((i) => canBeEmpty(i, nullable));
    case 'alt':
      return e.items.some((i) => canBeEmpty(i, nullable));
    case 'rep':
      return e.min === 0 || canBeEmpty(e.item, nullable);
    case 'call':
      return nullable.has(fromRule(e.rule));
    default:
      return false;
  }
}

/** The rules `e` can call before reading a byte. */
function startCalls(e: Expr, nullable: Set<string>, out: Set<string>): Set<string> {
  switch (e.k) {
    case 'seq':
      for (const i of e.items) {
        startCalls(i, nullable, out);
        if (!canBeEmpty(i, nullable)) break;
      }
      break;
    case 'alt':
      for (const i of e.items) startCalls(i, nullable, out);
      break;
    case 'rep':
      if (e.max > 0) startCalls(e.item, nullable, out);
      break;
    case 'call':
      out.add(fromRule(e.rule));
      break;
  }
  return out;
}
