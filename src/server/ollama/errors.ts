// Errors in Ollama's envelope ({"error": "message"}), which its clients raise as their
// ResponseError with the status. The server's own ApiError carries the status and the message.
import { ApiError } from '../errors.js';

/** The envelope; the parameter path, when the error names one, leads the message (Ollama has no field for it). */
export function ollamaEnvelope(err: ApiError): { error: string } {
  const message = err.param && !err.message.includes(err.param) ? `${err.param}: ${err.message}` : err.message;
  return { error: message };
}

/** Ollama's own wording ("model 'x' not found"), which tools match on, then the name to send. */
export const ollamaModelNotFound = (model: string, served: string) =>
  new ApiError(404, `model '${model}' not found; this server serves '${served}'`, { param: 'model', code: 'model_not_found' });

/**
 * An Ollama route that manages models, which grpst does another way: a 400 that says what to
 * do instead (the request is one this server cannot carry out, whatever its body).
 */
export const notOffered = (what: string, instead: string) => new ApiError(400, `${what} is not offered by this server: ${instead}`, { code: 'unsupported_endpoint' });
