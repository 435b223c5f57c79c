// What every client example shares: the command line (grps_trtllm's positional arguments plus a few
// --options), a client for http://HOST:PORT/v1, and the model id the server actually serves.
import { parseArgs } from 'node:util';
import OpenAI from 'openai';

export interface ExampleArgs {
  /** Positional arguments after HOST:PORT. */
  positionals: string[];
  options: Record<string, string | boolean | undefined>;
}

export interface Connection {
  client: OpenAI;
  /** --model, or the first (only) model the server lists. */
  model: string;
}

const commonOptions = {
  api_key: { type: 'string' },
  model: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Parses `HOST:PORT ARGS... [--options]`. The API key comes from --api_key, OPENAI_API_KEY or
 * GRPST_API_KEY; without one a placeholder is sent (the openai client refuses an empty key, and a
 * server without api_key ignores it).
 */
export function parseExampleArgs(
  usage: string,
  positionalNames: string[],
  extra: Record<string, { type: 'string' | 'boolean'; default?: string | boolean }> = {},
): { server: string; args: ExampleArgs } {
  let parsed;
  try {
    parsed = parseArgs({ options: { ...commonOptions, ...extra }, allowPositionals: true, strict: true });
  } catch (err) {
    fail(`${(err as Error).message}\n${usage}`);
  }
  if (parsed.values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const [server, ...positionals] = parsed.positionals;
  if (!server || positionals.length < positionalNames.length) fail(usage);
  if (!/^[^/\s]+:\d+$/.test(server)) fail(`expected the server as HOST:PORT (e.g. 127.0.0.1:9997), got "${server}"\n${usage}`);
  return { server, args: { positionals, options: parsed.values as ExampleArgs['options'] } };
}

export async function connect(server: string, args: ExampleArgs): Promise<Connection> {
  const apiKey = (args.options.api_key as string | undefined) ?? process.env.OPENAI_API_KEY ?? process.env.GRPST_API_KEY ?? 'no-key';
  const client = new OpenAI({ baseURL: `http://${server}/v1`, apiKey, maxRetries: 0, timeout: 600_000 });
  const named = args.options.model as string | undefined;
  if (named) return { client, model: named };
  try {
    const models = await client.models.list();
    const first = models.data[0]?.id;
    if (!first) fail(`http://${server}/v1/models lists no model; pass --model NAME`);
    return { client, model: first };
  } catch (err) {
    fail(describeError(err, server));
  }
}

/** `true`/`1`, as grps_trtllm's scripts read their stream argument. */
export function truthy(value: string): boolean {
  return value.toLowerCase() === 'true' || value === '1';
}

export function positiveInt(value: string | boolean | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) fail(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

export function describeError(err: unknown, server: string): string {
  if (err instanceof OpenAI.APIConnectionError) return `cannot reach http://${server}: ${rootCause(err)} (is the server running? grpst ps)`;
  if (err instanceof OpenAI.AuthenticationError) return `the server wants an API key: pass --api_key KEY or set OPENAI_API_KEY (${err.message})`;
  if (err instanceof OpenAI.APIError) return `the server answered ${err.status}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

export function fail(message: string): never {
  process.stderr.write(`${oneLine(message)}\n`);
  process.exit(1);
}

/** Newlines and runs of spaces folded, long text cut: a model's answer inside a message stays one readable line. */
export function oneLine(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}... (${flat.length - max} more characters)` : flat;
}

/** Runs main() and turns any error into one line on stderr and exit code 1. */
export function run(main: () => Promise<void>, server = ''): void {
  main().catch((err: unknown) => fail(describeError(err, server)));
}

/** The seed's closing lines: latency, token counts and speed. */
export function printStats(begin: number, usage: OpenAI.CompletionUsage | null | undefined): void {
  const latency = performance.now() - begin;
  console.log(`Latency: ${latency.toFixed(1)} ms`);
  if (!usage) return;
  console.log(`Input tokens: ${usage.prompt_tokens}, Output tokens: ${usage.completion_tokens}, Total tokens: ${usage.total_tokens}`);
  console.log(`Speed: ${((usage.total_tokens / latency) * 1000).toFixed(1)} tokens/s`);
}

function rootCause(err: Error): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
