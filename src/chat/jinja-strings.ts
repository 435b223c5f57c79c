// Python's str.strip / lstrip / rstrip for templates run by @huggingface/jinja. That library
// maps them to JavaScript's trim, which ignores the characters argument and trims a different
// whitespace set, so Qwen3's `reasoning_content.strip('\n')` would also drop spaces and render
// other text than transformers (Jinja2 calls Python's own str methods).
import { Environment } from '@huggingface/jinja';

/** Characters for which Python's str.isspace() is true: what strip() without an argument removes. */
const PY_SPACE = /^[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u;

/** Python's str.strip family: `chars` null or undefined strips whitespace, else those code points. */
export function pythonStrip(s: string, chars: string | null | undefined, left: boolean, right: boolean): string {
  const set = chars === null || chars === undefined ? null : new Set(Array.from(chars));
  const strip = (c: string) => (set ? set.has(c) : PY_SPACE.test(c));
  const cps = Array.from(s);
  let a = 0;
  let b = cps.length;
  if (left) while (a < b && strip(cps[a])) a++;
  if (right) while (b > a && strip(cps[b - 1])) b--;
  return a === 0 && b === cps.length ? s : cps.slice(a, b).join('');
}

interface RuntimeValueLike {
  value: unknown;
  type: string;
}
type Builtins = Map<string, unknown>;

let installed = false;

/** Replaces the string methods strip, lstrip and rstrip of @huggingface/jinja with Python's (once per process). */
export function usePythonStringMethods(): void {
  if (installed) return;
  installed = true;
  // The library does not export its value classes: take them from a converted string.
  const env = new Environment();
  env.set('s', '');
  const sample = env.lookupVariable('s') as unknown as RuntimeValueLike & { builtins: Builtins };
  const proto = Object.getPrototypeOf(sample) as object;
  const getter = Object.getOwnPropertyDescriptor(proto, 'builtins')?.get;
  const strip = sample.builtins.get('strip');
  if (sample.type !== 'StringValue' || !getter || !strip) throw new Error('@huggingface/jinja changed: its string values have no strip builtin to replace');
  const StringValue = proto.constructor as new (v: string) => RuntimeValueLike;
  const FunctionValue = (strip as object).constructor as new (fn: (args: RuntimeValueLike[]) => RuntimeValueLike) => unknown;
  const patched = new WeakSet<Builtins>();
  const method = (self: RuntimeValueLike, name: string, left: boolean, right: boolean) =>
    new FunctionValue((args) => {
      const arg = args[0];
      if (arg !== undefined && arg.type !== 'StringValue' && arg.type !== 'NullValue' && arg.type !== 'UndefinedValue') {
        throw new Error(`${name} arg must be None or str`);
      }
      const chars = arg?.type === 'StringValue' ? (arg.value as string) : null;
      return new StringValue(pythonStrip(self.value as string, chars, left, right));
    });
  Object.defineProperty(proto, 'builtins', {
    configurable: true,
    get(this: RuntimeValueLike) {
      const map = getter.call(this) as Builtins;
      if (!patched.has(map)) {
        map.set('strip', method(this, 'strip', true, true));
        map.set('lstrip', method(this, 'lstrip', true, false));
        map.set('rstrip', method(this, 'rstrip', false, true));
        patched.add(map);
      }
      return map;
    },
  });
}
