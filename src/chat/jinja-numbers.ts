// Floats as Python writes them, for templates run by @huggingface/jinja. Python's repr (which
// json.dumps and str use) switches to exponent notation below 1e-4 with at least two exponent
// digits ("1e-05", "1.5e-07"); JavaScript writes 0.00001 and 1.5e-7. A tool whose schema has
// "minimum": 0.00001 would otherwise put other text in the prompt than transformers (Jinja2 with
// Python's json.dumps). Above 1e-4 both write the same shortest digits for non-integral values.
import { Environment, Interpreter } from '@huggingface/jinja';

interface RuntimeValueLike {
  value: unknown;
  type: string;
}

/** Python's repr of a non-integral float (the shortest digits that read back to it, as JavaScript finds them). */
export function pythonFloatRepr(x: number): string {
  if (!Number.isFinite(x) || x === 0 || Math.abs(x) >= 1e-4) return String(x);
  const [mantissa, exponent] = x.toExponential().split('e');
  const e = Number(exponent);
  return `${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
}

/** json.dumps(value, ensure_ascii=False) of a runtime value: what transformers' tojson filter writes without arguments. */
function pythonJson(v: RuntimeValueLike): string {
  switch (v.type) {
    case 'NullValue':
    case 'UndefinedValue':
      return 'null';
    case 'FloatValue':
      return pythonFloatRepr(v.value as number);
    case 'ArrayValue':
      return `[${(v.value as RuntimeValueLike[]).map(pythonJson).join(', ')}]`;
    case 'ObjectValue':
      return `{${[...(v.value as Map<string, RuntimeValueLike>)].map(([k, x]) => `${JSON.stringify(k)}: ${pythonJson(x)}`).join(', ')}}`;
    case 'IntegerValue':
    case 'BooleanValue':
    case 'StringValue':
      return JSON.stringify(v.value);
    default:
      throw new Error(`Cannot convert to JSON: ${v.type}`);
  }
}

let installed = false;

/** Makes `| tojson` and printed floats of @huggingface/jinja write floats as Python does (once per process). */
export function usePythonFloats(): void {
  if (installed) return;
  installed = true;
  // The library does not export its value classes: take them from converted values.
  const env = new Environment();
  env.set('f', 0.5);
  env.set('s', '');
  const float = env.lookupVariable('f') as unknown as RuntimeValueLike;
  const str = env.lookupVariable('s') as unknown as RuntimeValueLike;
  const FloatProto = Object.getPrototypeOf(float) as { toString(this: RuntimeValueLike): string };
  const StringValue = Object.getPrototypeOf(str).constructor as new (v: string) => RuntimeValueLike;
  const proto = Interpreter.prototype as unknown as { applyFilter(operand: RuntimeValueLike, node: { type: string; value?: string }, env: unknown): RuntimeValueLike };
  if (float.type !== 'FloatValue' || str.type !== 'StringValue' || typeof proto.applyFilter !== 'function') {
    throw new Error('@huggingface/jinja changed: no FloatValue or applyFilter to adapt');
  }
  const toString = FloatProto.toString;
  FloatProto.toString = function (this: RuntimeValueLike) {
    const x = this.value as number;
    return x !== 0 && Math.abs(x) < 1e-4 ? pythonFloatRepr(x) : toString.call(this);
  };
  // Plain `| tojson` only (Qwen3's form); tojson(indent=...) keeps the library's own writer.
  const applyFilter = proto.applyFilter;
  proto.applyFilter = function (operand, node, environment) {
    if (node.type === 'Identifier' && node.value === 'tojson') return new StringValue(pythonJson(operand));
    return applyFilter.call(this, operand, node, environment);
  };
}
