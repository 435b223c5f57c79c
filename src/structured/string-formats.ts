// String formats ("format") the compiler enforces, written so that the strict validators
// (ajv-formats' full mode) accept every string they allow: dates have real days (February has
// 28, so leap years never matter), times carry a time zone.
import { alt, bytes, lit, opt, rep, seq, star, type Expr } from './grammar.js';

const digit = bytes([0x30, 0x39]);
const two = (lo: number, hi: number): Expr => {
  const parts: Expr[] = [];
  for (let tens = Math.floor(lo / 10); tens <= Math.floor(hi / 10); tens++) {
    const a = Math.max(lo, tens * 10) % 10;
    const b = Math.min(hi, tens * 10 + 9) % 10;
    parts.push(seq(lit(String(tens)), bytes([0x30 + a, 0x30 + b])));
  }
  return alt(...parts);
};

const year = seq(digit, digit, digit, digit);
const monthDay = alt(
  seq(alt(lit('01'), lit('03'), lit('05'), lit('07'), lit('08'), lit('10'), lit('12')), lit('-'), two(1, 31)),
  seq(alt(lit('04'), lit('06'), lit('09'), lit('11')), lit('-'), two(1, 30)),
  seq(lit('02-'), two(1, 28)),
);
const date = seq(year, lit('-'), monthDay);
const zone = alt(lit('Z'), seq(bytes([0x2b, 0x2b], [0x2d, 0x2d]), two(0, 23), lit(':'), two(0, 59)));
const time = seq(two(0, 23), lit(':'), two(0, 59), lit(':'), two(0, 59), opt(seq(lit('.'), rep(digit, 1, 6))), zone);

const hex = bytes([0x30, 0x39], [0x61, 0x66]);
const hexes = (n: number) => rep(hex, n, n);
const uuid = seq(hexes(8), lit('-'), hexes(4), lit('-'), hexes(4), lit('-'), hexes(4), lit('-'), hexes(12));

const octet = alt(
  seq(lit('25'), bytes([0x30, 0x35])),
  seq(lit('2'), bytes([0x30, 0x34]), digit),
  seq(lit('1'), digit, digit),
  seq(bytes([0x31, 0x39]), digit),
  digit,
);
const ipv4 = seq(octet, lit('.'), octet, lit('.'), octet, lit('.'), octet);

const alnum = bytes([0x30, 0x39], [0x61, 0x7a]);
// RFC 5322 atom characters that need no escaping inside a JSON string.
const atomChar = bytes([0x30, 0x39], [0x61, 0x7a], [0x21, 0x21], [0x23, 0x27], [0x2a, 0x2b], [0x2d, 0x2d], [0x2f, 0x2f], [0x3d, 0x3d], [0x3f, 0x3f], [0x5e, 0x60], [0x7b, 0x7e]);
const atom = rep(atomChar, 1, Infinity);
const label = seq(alnum, opt(seq(star(alt(alnum, lit('-'))), alnum)));
const email = seq(atom, star(seq(lit('.'), atom)), lit('@'), rep(seq(label, lit('.')), 1, Infinity), label);

/** The string body (between the quotes) of each supported format. */
export const stringFormats: ReadonlyMap<string, Expr> = new Map([
  ['date', date],
  ['time', time],
  ['date-time', seq(date, lit('T'), time)],
  ['uuid', uuid],
  ['ipv4', ipv4],
  ['email', email],
]);
