// Reading request bodies and writing JSON answers over node:http.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { withWrittenKeysAndNumbers } from '../parse/json-numbers.js';
import { ApiError, badRequest, bodyTooLarge } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body as bytes; 413 as soon as it passes `limit` (from Content-Length or while reading). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(bodyTooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(bodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!failed) reject(err);
      failed = true;
    });
  });
}

/**
 * The body parsed as a JSON object (400 for invalid UTF-8, invalid JSON, or not an object). Its
 * objects list their keys in the order the client wrote them, integer-like keys included, as
 * Python's json.loads keeps them for vLLM: a tool's parameters, a call's arguments and a schema's
 * properties reach the prompt and the grammar in that order (parse/ordered-json.ts). Numbers
 * JSON.parse changes (1.0, 1e20, integers past 2^53) keep their text beside the value, for
 * templates to print as Python does (parse/json-numbers.ts). Only a body with a key of digits or
 * such a number is walked a second time, once for both.
 */
export async function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const bytes = await readBody(req, limit);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw badRequest('The request body is not valid UTF-8. Send JSON encoded as UTF-8.', null, 'invalid_encoding');
  }
  if (text.trim().length === 0) throw badRequest('The request body is empty. Send a JSON object.', null, 'invalid_json');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw badRequest(`The request body is not valid JSON (${why}). Send a JSON object.`, null, 'invalid_json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw badRequest('The request body must be a JSON object.', null, 'invalid_json');
  return withWrittenKeysAndNumbers(text, value) as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, body: string, contentType: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendError(res: ServerResponse, err: ApiError, envelope: (e: ApiError) => unknown = (e) => e.envelope()): void {
  // A body we stopped reading (413) leaves bytes on the socket: close it rather than reuse it.
  const headers = err.status === 413 ? { ...err.headers, connection: 'close' } : err.headers;
  sendJson(res, err.status, envelope(err), headers);
}
