// Every error the server answers with, in OpenAI's envelope {"error":{message,type,param,code}}.
// Routes throw ApiError; the router's one wrapper turns anything thrown into an envelope.
import type { z } from 'zod';
import { ExitCode, GrpstError } from '../util/errors.js';

export interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  /** Extra response headers (Retry-After on 429, WWW-Authenticate on 401). */
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    message: string,
    opts: { type?: string; param?: string | null; code?: string | null; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.type = opts.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
    this.headers = opts.headers ?? {};
  }

  envelope(): ErrorEnvelope {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A connection past server.yml's max_connections: answered, then closed. */
export const tooManyConnections = (max: number) =>
  new ApiError(503, `The server has ${max} connections open, the most it keeps (max_connections). Retry shortly, or reuse a connection.`, {
    code: 'too_many_connections',
    headers: { 'retry-after': '1' },
  });

/** A 400; its code is invalid_value unless a more precise one applies, so clients always get one to switch on. */
export const badRequest = (message: string, param: string | null = null, code = 'invalid_value') => new ApiError(400, message, { param, code });

/**
 * The sentence OpenAI's own context-overflow message carries. openai-python 3 puts only the
 * message in an error's text, no longer the body with its code, so clients that tell an overflow
 * from other 400s by text go by this (LangChain's ContextOverflowError, which its agents'
 * summarization catches to shorten the conversation and retry); vLLM's "maximum context length"
 * wording stays first for the clients that match that.
 */
const overflowSentence = 'Input tokens exceed the configured limit';

/** budgetField: the request field that sets the answer's length (max_output_tokens on /v1/responses). */
export function contextLengthExceeded(maxLen: number, promptTokens: number, maxTokens: number, param = 'messages', budgetField = 'max_tokens'): ApiError {
  return new ApiError(
    400,
    `This model's maximum context length is ${maxLen} tokens. However, you requested ${promptTokens + maxTokens} tokens ` +
      `(${promptTokens} in the prompt, ${maxTokens} for the completion). ${overflowSentence} once the completion is counted. Reduce the prompt or ${budgetField}.`,
    { param, code: 'context_length_exceeded' },
  );
}

/** A prompt past an engine's --max_input_len (the context may still have room: max_seq_len counts output too). */
export function inputTooLong(maxInputLen: number, promptTokens: number, param = 'messages'): ApiError {
  return new ApiError(
    400,
    `This model's maximum input length is ${maxInputLen} tokens (the engine's max_input_len). However, your prompt has ${promptTokens} tokens. ` +
      `${overflowSentence}. Reduce the prompt, or rebuild the engine with a larger --max_input_len.`,
    { param, code: 'context_length_exceeded' },
  );
}

export const modelNotFound = (model: string, served: string, aliases: readonly string[] = [], adapters: readonly string[] = []) =>
  new ApiError(404, `The model '${model}' does not exist on this server; it serves '${served}'${aliases.length > 0 ? ` (also named ${aliases.map((a) => `'${a}'`).join(', ')})` : ''}${adapters.length > 0 ? ` and the LoRA adapters ${adapters.map((a) => `'${a}'`).join(', ')}` : ''}. Send "model": "${served}".`, {
    param: 'model',
    code: 'model_not_found',
  });

export const responseNotFound = (id: string, param: string | null = null) =>
  new ApiError(404, `Response with id '${id}' not found. Responses are kept in this server's memory while it runs (the most recent ones, and only those created with store left on); send the whole input instead.`, {
    type: 'invalid_request_error',
    param,
    code: 'response_not_found',
  });

/** `routes`: the API's routes as "METHOD /path", listed so the client sees what this server has. */
export const routeNotFound = (method: string, path: string, routes: readonly string[]) =>
  new ApiError(404, `No route ${method} ${path}. Routes: ${routes.join(', ')}.`, {
    code: 'unknown_url',
  });

export const methodNotAllowed = (method: string, path: string, allowed: string[]) =>
  new ApiError(405, `${path} does not accept ${method}; use ${allowed.join(' or ')}.`, {
    code: 'method_not_allowed',
    headers: { allow: allowed.join(', ') },
  });

export const bodyTooLarge = (limit: number) =>
  new ApiError(413, `The request body is larger than the server's limit of ${limit} bytes. Send a smaller body or raise max_body_bytes in server.yml.`, {
    code: 'request_too_large',
  });

export const requestTimeout = (headersMs: number, requestMs: number) =>
  new ApiError(
    408,
    `The request did not arrive in time: the server waits ${seconds(headersMs)} for a request's headers and ${seconds(requestMs)} for the whole request. ` +
      'Send the request at once, or raise request_timeout_s in server.yml.',
    { code: 'request_timeout' },
  );

export const headersTooLarge = () =>
  new ApiError(431, 'The request headers are larger than the server accepts (16 KiB in all). Send fewer or shorter headers.', {
    code: 'headers_too_large',
  });

export const invalidHttp = (why: string) =>
  new ApiError(400, `The request is not valid HTTP/1.1 (${why}). Send a well-formed request.`, { code: 'invalid_http' });

const seconds = (ms: number) => `${Number((ms / 1000).toFixed(3))} s`;

export const unauthorized = (reason: string) =>
  new ApiError(401, `${reason}. Send the server's key as "Authorization: Bearer <key>" or as "x-api-key: <key>".`, {
    code: 'invalid_api_key',
    headers: { 'www-authenticate': 'Bearer' },
  });

export const queueFull = (running: number, waiting: number) =>
  new ApiError(429, `The server is busy: ${running} requests are running and ${waiting} are waiting, the most it takes. Retry shortly.`, {
    type: 'rate_limit_error',
    code: 'queue_full',
    headers: { 'retry-after': '1' },
  });

export const notReady = (state: string) =>
  new ApiError(503, `The model is not ready yet (${state}). Retry when GET /health answers 200.`, {
    type: 'server_error',
    code: 'model_not_ready',
    headers: { 'retry-after': '2' },
  });

export const shuttingDown = () =>
  new ApiError(503, 'The server is shutting down and takes no new requests.', { type: 'server_error', code: 'shutting_down' });

/** OpenAI's spelling of a parameter's path: `messages[0].content[1].type`. */
export function paramPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out === '' ? String(key) : `.${String(key)}`;
  return out;
}

/**
 * The first zod issue as OpenAI words it, with OpenAI's codes, so a client that switches on
 * `code` treats both alike: missing_required_parameter, invalid_type, integer_above_max_value /
 * decimal_below_min_value, array_above_max_length / empty_array, string_above_max_length, or
 * invalid_value. `body` is the request as sent: it tells a missing field from a mistyped one.
 */
export function fromZod(err: z.ZodError, body?: unknown): ApiError {
  const issue = err.issues[0];
  if (!issue) return badRequest('Invalid request.');
  const param = paramPath(issue.path) || null;
  const name = param ? `'${param}'` : 'the request body';
  const value = valueAt(body, issue.path);
  const what = issue.message.replace(/\.$/, '');
  if ((issue.code === 'invalid_type' || issue.code === 'invalid_union') && value === undefined && issue.path.length > 0)
    return badRequest(`Missing required parameter: ${name}.`, param, 'missing_required_parameter');
  if (issue.code === 'invalid_type') {
    return badRequest(`Invalid type for ${name}: ${what.replace(/^Invalid input: /, '')}.`, param, 'invalid_type');
  }
  if (issue.code === 'invalid_union') {
    // Each branch refused the value's type at the top: one type error listing what is accepted.
    const expected = issue.errors.map((branch) => (branch[0]?.code === 'invalid_type' && branch[0].path.length === 0 ? branch[0].expected : undefined));
    if (expected.length > 0 && expected.every((e) => e !== undefined))
      return badRequest(`Invalid type for ${name}: expected ${[...new Set(expected)].join(' or ')}, received ${typeName(value)}.`, param, 'invalid_type');
  }
  if (issue.code === 'custom' && typeof issue.params?.code === 'string') return badRequest(`Invalid ${name}: ${what}.`, param, issue.params.code);
  if (issue.code === 'too_big' || issue.code === 'too_small') {
    const code = limitCode(issue.origin, issue.code === 'too_big', value, issue.path);
    return badRequest(`Invalid ${name}: ${what.replace(/^Too (big|small): /, '')}.`, param, code);
  }
  return badRequest(`Invalid value for ${name}: ${what.replace(/^Invalid (input|option): /, '').replace(/^Invalid discriminator value\. Expected/, 'expected one of')}.`, param);
}

/** Parameters that take any number (OpenAI's "decimal"); the other numeric ones take integers. */
const decimalParams = new Set(['temperature', 'top_p', 'min_p', 'presence_penalty', 'frequency_penalty', 'repetition_penalty', 'logit_bias']);

function limitCode(origin: string, above: boolean, value: unknown, path: readonly PropertyKey[]): string {
  const side = above ? 'above_max' : 'below_min';
  if (origin === 'number') {
    const decimal = !Number.isInteger(value) || path.some((key) => typeof key === 'string' && decimalParams.has(key));
    return `${decimal ? 'decimal' : 'integer'}_${side}_value`;
  }
  if (origin === 'array') return !above && Array.isArray(value) && value.length === 0 ? 'empty_array' : `array_${side}_length`;
  if (origin === 'string') return `string_${side}_length`;
  return 'invalid_value';
}

const typeName = (value: unknown): string => (value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value);

function valueAt(body: unknown, path: readonly PropertyKey[]): unknown {
  let at = body;
  for (const key of path) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<PropertyKey, unknown>)[key];
  }
  return at;
}

/** Anything thrown that is not an ApiError is ours (500), except input the engine refused (400). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof GrpstError && err.exitCode === ExitCode.badInput)
    return badRequest(err.hint ? `${err.message}; ${err.hint}` : err.message, null, 'invalid_value');
  const message = err instanceof Error ? err.message : String(err);
  return new ApiError(500, `Internal error: ${message}`, { code: 'internal_error' });
}
