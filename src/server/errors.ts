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

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, { param, code });

export function contextLengthExceeded(maxLen: number, promptTokens: number, maxTokens: number, param = 'messages'): ApiError {
  return new ApiError(
    400,
    `This model's maximum context length is ${maxLen} tokens. However, you requested ${promptTokens + maxTokens} tokens ` +
      `(${promptTokens} in the prompt, ${maxTokens} for the completion). Reduce the prompt or max_tokens.`,
    { param, code: 'context_length_exceeded' },
  );
}

/** A prompt past an engine's --max_input_len (the context may still have room: max_seq_len counts output too). */
export function inputTooLong(maxInputLen: number, promptTokens: number, param = 'messages'): ApiError {
  return new ApiError(
    400,
    `This model's maximum input length is ${maxInputLen} tokens (the engine's max_input_len). However, your prompt has ${promptTokens} tokens. ` +
      'Reduce the prompt, or rebuild the engine with a larger --max_input_len.',
    { param, code: 'context_length_exceeded' },
  );
}

export const modelNotFound = (model: string, served: string) =>
  new ApiError(404, `The model '${model}' does not exist on this server; it serves '${served}'. Send "model": "${served}".`, {
    param: 'model',
    code: 'model_not_found',
  });

export const routeNotFound = (method: string, path: string) =>
  new ApiError(404, `No route ${method} ${path}. Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics, POST /tokenize, POST /detokenize.`, {
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
  new ApiError(401, `${reason}. Send the server's key as "Authorization: Bearer <key>".`, {
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

/** OpenAI-style dotted path of the first zod issue, e.g. "messages.0.content". */
export function fromZod(err: z.ZodError, root?: string): ApiError {
  const issue = err.issues[0];
  const path = issue?.path.map(String).join('.') ?? '';
  const param = path.length > 0 ? path : (root ?? null);
  const what = issue ? issue.message : 'invalid request';
  return badRequest(param ? `Invalid value for '${param}': ${what}` : `Invalid request: ${what}`, param, 'invalid_value');
}

/** Anything thrown that is not an ApiError is ours (500), except input the engine refused (400). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof GrpstError && err.exitCode === ExitCode.badInput)
    return badRequest(err.hint ? `${err.message}; ${err.hint}` : err.message, null, 'invalid_value');
  const message = err instanceof Error ? err.message : String(err);
  return new ApiError(500, `Internal error: ${message}`, { code: 'internal_error' });
}
