// Numbers as Python writes them, for templates run by @huggingface/jinja. Two things differ:
//
// - Float text. Python's repr (which json.dumps and str use) writes the shortest digits that read
//   back, as JavaScript does, but in exponent form below 1e-4 and from 1e16 up, with two exponent
//   digits at least ("1e-05", "1e+16"), and an integral float with ".0" ("1.0", "-0.0"). A tool
//   whose schema has "minimum": 0.00001 would otherwise put other text in the prompt than
//   transformers (Jinja2 with Python's json.dumps).
// - Which numbers are floats. JavaScript has only doubles, and the library makes every integral
//   one an int: a client's `1.0`, `-0.0` or `1e20` (floats to Python's json.loads) would print as
//   "1", "0" and "100000000000000000000", and an integer above 2^53 with other digits. The
//   request's text of those numbers is kept (parse/json-numbers.ts) and reaches the template as
//   PythonNumber markers, which become the library's float, or an int that prints its digits.
import { Environment, Interpreter } from '@huggingface/jinja';

interface RuntimeValueLike {
  value: unknown;
  type: string;
}

/** Python's repr of a float: shortest round-trip digits (as JavaScript finds them) in Python's layout. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  const [mantissa, exponent] = Math.abs(x).toExponential().split('e');
  const e = Number(exponent);
  if (e < -4 || e >= 16) return `${sign}${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  const digits = mantissa.replace('.', '');
  if (e < 0) return `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
  const whole = digits.slice(0, e + 1).padEnd(e + 1, '0');
  return `${sign}${whole}.${digits.slice(e + 1) || '0'}`;
}

/** json.dumps of a float: repr, with JavaScript's names for the non-finite ones (as Python's encoder writes them). */
function pythonJsonFloat(x: number): string {
  return Number.isFinite(x) ? pythonFloatRepr(x) : String(x);
}

/**
 * A number of the client's JSON the template must see as Python would: a float whatever its
 * value (`float`), or an int written with these exact digits. No enumerable keys: until the
 * bridge replaces it, the library sees an empty object.
 */
export class PythonNumber {
  declare readonly value: number;
  declare readonly digits: string | undefined;
  constructor(value: number, digits?: string) {
    Object.defineProperties(this, { value: { value }, digits: { value: digits } });
  }
}

/**
 * The marker for a number the client wrote as `token` (JSON text) that JSON.parse read as
 * `value`: a float when the text has a fraction or exponent, else an int with the text's digits.
 */
export function pythonNumber(token: string, value: number): PythonNumber {
  return /[.eE]/.test(token) ? new PythonNumber(value) : new PythonNumber(value, token);
}

/** Ints whose digits the double cannot spell (made from PythonNumber markers). */
const intDigits = new WeakMap<object, string>();

/** json.dumps(value, ensure_ascii=False) of a runtime value: what transformers' tojson filter writes without arguments. */
function pythonJson(v: RuntimeValueLike): string {
  switch (v.type) {
    case 'NullValue':
    case 'UndefinedValue':
      return 'null';
    case 'FloatValue':
      return pythonJsonFloat(v.value as number);
    case 'IntegerValue':
      return intDigits.get(v) ?? JSON.stringify(v.value);
    case 'ArrayValue':
      return `[${(v.value as RuntimeValueLike[]).map(pythonJson).join(', ')}]`;
    case 'ObjectValue':
      return `{${[...(v.value as Map<string, RuntimeValueLike>)].map(([k, x]) => `${JSON.stringify(k)}: ${pythonJson(x)}`).join(', ')}}`;
    case 'BooleanValue':
    case 'StringValue':
      return JSON.stringify(v.value);
    default:
      throw new Error(`Cannot convert to JSON: ${v.type}`);
  }
}

type Ctor = new (v: unknown) => RuntimeValueLike;
let restoring = false;

/**
 * Runs `render` with PythonNumber markers in the values it sets turned into the library's
 * numbers. Off by default: only a render given markers walks its values for them.
 */
export function withPythonNumbers<T>(render: () => T): T {
  const was = restoring;
  restoring = true;
  try {
    return render();
  } finally {
    restoring = was;
  }
}

let installed = false;

/** Makes `| tojson` and printed numbers of @huggingface/jinja write them as Python does (once per process). */
export function usePythonFloats(): void {
  if (installed) return;
  installed = true;
  // The library does not export its value classes: take them from converted values.
  const env = new Environment();
  env.set('f', 0.5);
  env.set('i', 1);
  env.set('s', '');
  const float = env.lookupVariable('f') as unknown as RuntimeValueLike;
  const int = env.lookupVariable('i') as unknown as RuntimeValueLike;
  const str = env.lookupVariable('s') as unknown as RuntimeValueLike;
  const FloatValue = Object.getPrototypeOf(float).constructor as Ctor;
  const IntegerValue = Object.getPrototypeOf(int).constructor as Ctor;
  const StringValue = Object.getPrototypeOf(str).constructor as Ctor;
  const proto = Interpreter.prototype as unknown as { applyFilter(operand: RuntimeValueLike, node: { type: string; value?: string }, env: unknown): RuntimeValueLike };
  const envProto = Environment.prototype as unknown as { set(name: string, value: unknown): RuntimeValueLike };
  if (float.type !== 'FloatValue' || int.type !== 'IntegerValue' || str.type !== 'StringValue' || typeof proto.applyFilter !== 'function') {
    throw new Error('@huggingface/jinja changed: no FloatValue, IntegerValue or applyFilter to adapt');
  }
  FloatValue.prototype.toString = function (this: RuntimeValueLike) {
    return pythonFloatRepr(this.value as number);
  };
  const intToString = IntegerValue.prototype.toString;
  IntegerValue.prototype.toString = function (this: RuntimeValueLike) {
    return intDigits.get(this) ?? intToString.call(this);
  };
  // Plain `| tojson` only (Qwen3's form); tojson(indent=...) keeps the library's own writer.
  const applyFilter = proto.applyFilter;
  proto.applyFilter = function (operand, node, environment) {
    if (node.type === 'Identifier' && node.value === 'tojson') return new StringValue(pythonJson(operand));
    return applyFilter.call(this, operand, node, environment);
  };
  // The library converts each template variable once, when set; markers are then swapped for
  // numbers in the converted tree, found by walking the JavaScript value beside it.
  const toRuntime = (n: PythonNumber): RuntimeValueLike => {
    if (n.digits === undefined) return new FloatValue(n.value);
    const v = new IntegerValue(n.value);
    intDigits.set(v, n.digits);
    return v;
  };
  const restore = (js: unknown, rv: RuntimeValueLike): RuntimeValueLike => {
    if (js instanceof PythonNumber) return toRuntime(js);
    if (Array.isArray(js)) {
      const items = rv.value as RuntimeValueLike[];
      js.forEach((x, i) => {
        if (x !== null && typeof x === 'object') items[i] = restore(x, items[i]);
      });
    } else if (js !== null && typeof js === 'object' && rv.type === 'ObjectValue') {
      const members = rv.value as Map<string, RuntimeValueLike>;
      for (const [k, x] of Object.entries(js)) if (x !== null && typeof x === 'object') members.set(k, restore(x, members.get(k)!));
    }
    return rv;
  };
  const set = envProto.set;
  envProto.set = function (this: { variables: Map<string, RuntimeValueLike> }, name, value) {
    const rv = set.call(this, name, value);
    if (!restoring || value === null || typeof value !== 'object') return rv;
    const restored = restore(value, rv);
    if (restored !== rv) this.variables.set(name, restored);
    return restored;
  };
}
