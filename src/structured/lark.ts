// Lark grammars for guided_grammar, as vLLM takes them: a grammar with no `::=` anywhere is read
// as Lark and rewritten line for line into GBNF (gbnf.ts), so errors keep their line numbers.
//   ?start: expr                    ->  start ::= expr
//   expr: term (("+" | "-") term)*  ->  expr ::= term (("+" | "-") term)*
//       | "-" expr                  ->      | "-" expr
//   DIGIT: "0".."9"                 ->  DIGIT ::= [0-9]
//   NAME: /[a-z_]+/                 ->  NAME ::= /[a-z_]+/   (a regular expression matched whole)
// The start rule is `start` (else the first rule), as vLLM picks it. Refused with the line named:
// directives (%import, %ignore), rule priorities (`rule.2:`), templates and regex flags.
import { GbnfError } from './gbnf.js';

/** Whether vLLM would read the grammar as Lark: no line defines a rule with `::=`. */
export function looksLikeLark(text: string): boolean {
  return !text.split('\n').some((line) => stripComment(line).includes('::='));
}

/** The Lark grammar as GBNF, line for line, with `root ::= <start rule>` added at the end. */
export function larkToGbnf(text: string): string {
  const rules: string[] = [];
  const lines = text.split('\n').map((raw, i) => {
    const at = `line ${i + 1}`;
    const line = stripComment(raw);
    const trimmed = line.trim();
    if (trimmed === '') return '';
    if (trimmed.startsWith('%')) throw new GbnfError(`${at}: Lark directives (${trimmed.split(/\s/)[0]}) are not supported; define the rules they would bring in`);
    const head = /^(\s*)[?!]?([A-Za-z_][A-Za-z0-9_]*)(\.-?\d+)?(\{[^}]*\})?\s*:(?!:)/.exec(line);
    let body = line;
    if (head) {
      if (head[3]) throw new GbnfError(`${at}: rule priorities ("${head[2]}${head[3]}") are not supported; leave them out`);
      if (head[4]) throw new GbnfError(`${at}: rule templates ("${head[2]}${head[4]}") are not supported; write each rule out`);
      rules.push(head[2]);
      body = `${head[1]}${head[2]} ::=${line.slice(head[0].length)}`;
    } else if (!trimmed.startsWith('|')) throw new GbnfError(`${at}: expected a rule ("name: ...") or an alternative of the rule before ("| ...")`);
    return literalRanges(body, at);
  });
  if (rules.length === 0) throw new GbnfError('the grammar defines no rule: write `start: ...` (Lark) or `root ::= ...` (GBNF)');
  if (!rules.includes('root')) lines.push(`root ::= ${rules.includes('start') ? 'start' : rules[0]}`);
  return lines.join('\n');
}

/** The line without its `//` or `#` comment (outside quotes and /regex/). */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' || (c === '/' && line[i + 1] === '/')) return line.slice(0, i);
    else if (c === '/') quote = '/';
  }
  return line;
}

/** Lark's `"a".."z"` (one character each) as the class `[a-z]`. */
function literalRanges(line: string, at: string): string {
  return line.replace(/"((?:\\.|[^"\\])+)"\s*\.\.\s*"((?:\\.|[^"\\])+)"/g, (whole, lo: string, hi: string) => {
    const one = (s: string) => (s.startsWith('\\') ? s : Array.from(s).length === 1 ? s : undefined);
    const a = one(lo);
    const b = one(hi);
    if (a === undefined || b === undefined) throw new GbnfError(`${at}: the range ${whole} must join two single characters`);
    const escape = (s: string) => (/^[\]\\^-]$/.test(s) ? `\\${s}` : s);
    return `[${escape(a)}-${escape(b)}]`;
  });
}
