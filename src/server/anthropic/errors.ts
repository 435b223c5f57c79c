// Errors in Anthropic's envelope ({"type": "error", "error": {"type", "message"}}), which its SDKs
// read to raise the right exception class. The server's own ApiError carries the status and the
// message; the error type follows from the status as Anthropic assigns it.
import { ApiError } from '../errors.js';
import type { ContextLimits } from '../context.js';
import { promptTokenLimit } from '../openai/sampling.js';

const typeByStatus: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  503: 'overloaded_error',
};

export function anthropicErrorType(status: number): string {
  return typeByStatus[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

export type AnthropicErrorBody = {
  type: 'error';
  error: { type: string; message: string };
  request_id?: string;
};

/**
 * The envelope; the parameter path, when the error names one, leads the message (Anthropic has no
 * field for it). An error answer carries the request id of its request-id header beside the error,
 * as Anthropic's does, so a client that logs the body alone can still quote it.
 */
export function anthropicEnvelope(err: ApiError, requestId?: string): AnthropicErrorBody {
  const message = err.param && !err.message.includes(err.param) ? `${err.param}: ${err.message}` : err.message;
  const body: AnthropicErrorBody = { type: 'error', error: { type: anthropicErrorType(err.status), message } };
  if (requestId !== undefined) body.request_id = requestId;
  return body;
}

// A context overflow on the Messages API is worded exactly as Anthropic's API words it: clients
// tell it from other 400s by that text alone. LangChain's ChatAnthropic raises its
// ContextOverflowError on "prompt is too long", agents on the Messages API compact the
// conversation on it, and some parse the numbers (the max_tokens form's three, to retry with a
// max_tokens that fits), matching the whole message. So neither carries a parameter prefix or an
// added hint; the ApiError keeps OpenAI's code, as every overflow of this server does.

/** A prompt too long to leave room for one answer token (Anthropic's own says "> 199999 maximum" for its 200000-token context). */
export function promptTooLong(promptTokens: number, maxPromptTokens: number): ApiError {
  return new ApiError(400, `prompt is too long: ${promptTokens} tokens > ${maxPromptTokens} maximum`, { code: 'context_length_exceeded' });
}

/** A prompt that fits, with a max_tokens the rest of the context cannot hold. */
export function contextLimitExceeded(promptTokens: number, maxTokens: number, maxSeqLen: number): ApiError {
  return new ApiError(
    400,
    `input length and \`max_tokens\` exceed context limit: ${promptTokens} + ${maxTokens} > ${maxSeqLen}, decrease input length or \`max_tokens\` and try again`,
    { code: 'context_length_exceeded' },
  );
}

/**
 * A Messages request's max_tokens (which it must send), refused as tokenBudget refuses an
 * overflow but in Anthropic's words. The longest prompt leaves room for one answer token, and is
 * at most the engine's max_input_len where that is the tighter limit.
 */
export function messagesTokenBudget(maxTokens: number, promptTokens: number, limits: ContextLimits): number {
  const maxPromptTokens = promptTokenLimit(limits);
  if (promptTokens > maxPromptTokens) throw promptTooLong(promptTokens, maxPromptTokens);
  if (promptTokens + maxTokens > limits.maxSeqLen) throw contextLimitExceeded(promptTokens, maxTokens, limits.maxSeqLen);
  return maxTokens;
}
