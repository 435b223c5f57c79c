// Errors in Anthropic's envelope ({"type": "error", "error": {"type", "message"}}), which its SDKs
// read to raise the right exception class. The server's own ApiError carries the status and the
// message; the error type follows from the status as Anthropic assigns it.
import type { ApiError } from '../errors.js';

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

/** The envelope; the parameter path, when the error names one, leads the message (Anthropic has no field for it). */
export function anthropicEnvelope(err: ApiError): { type: 'error'; error: { type: string; message: string } } {
  const message = err.param && !err.message.includes(err.param) ? `${err.param}: ${err.message}` : err.message;
  return { type: 'error', error: { type: anthropicErrorType(err.status), message } };
}
