// Streams a chat completion from /v1/chat/completions with fetch: SSE frames parsed as they
// arrive, OpenAI's error envelope turned into an Error that says what to do. Aborting the signal
// closes the connection, which makes the server cancel the generation and free its slot. A
// stream that ends before the server said it was finished is an error too (StreamCutError).

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * The answer stopped arriving before the server finished it: the connection was closed (a proxy's
 * timeout, a server restart) or lost. What came so far is all there is of it.
 */
export class StreamCutError extends Error {}

function headers(apiKey) {
  const h = { 'content-type': 'application/json' };
  if (apiKey) h.authorization = `Bearer ${apiKey}`;
  return h;
}

async function errorOf(res) {
  let message = `HTTP ${res.status}`;
  let code = null;
  try {
    const body = await res.json();
    if (body && body.error) {
      message = body.error.message || message;
      code = body.error.code || null;
    }
  } catch {
    // Not JSON: keep the status line.
  }
  if (res.status === 401) message = `${message} Set the API key in Settings.`;
  return new ApiError(res.status, message, code);
}

/**
 * The served model's id and the LoRA adapters served beside it (GET /v1/models: the model comes
 * first; an adapter names the model it adapts as its parent, the model's other names do not).
 */
export async function fetchModels(apiKey, signal) {
  const res = await fetch('/v1/models', { headers: headers(apiKey), signal });
  if (!res.ok) throw await errorOf(res);
  const body = await res.json();
  const data = body.data || [];
  if (!data[0]) throw new ApiError(500, 'The server lists no model.', null);
  return { model: data[0].id, adapters: data.filter((m) => typeof m.parent === 'string').map((m) => m.id) };
}

/**
 * Yields the parsed `data:` payloads of a streaming chat completion, in order, until [DONE].
 * An error frame sent after streaming began is thrown as an ApiError. A stream that ends without
 * [DONE] and before any choice had its finish_reason was cut short: a clean close looks just like
 * the end of the answer to fetch, so without this check a half answer would pass for a whole one.
 * A finish_reason is taken as the end without [DONE], since nothing of the answer is missing then.
 */
export async function* streamChat(body, { apiKey, signal }) {
  const res = await fetch('/v1/chat/completions', {
    method: 'POST',
    headers: headers(apiKey),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!res.ok) throw await errorOf(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let finished = false;
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        // A stop is the reader's own doing; anything else lost the connection mid-answer.
        if (signal?.aborted) throw err;
        throw new StreamCutError(`The answer was cut off: the connection to the server was lost before it finished (${err instanceof Error ? err.message : err}); is it still running? (grpst ps)`);
      }
      if (chunk.done) {
        // A last frame without its blank line still counts when it is the end marker.
        if (finished || /^data:\s*\[DONE\]\s*$/.test(buf.trim())) return;
        throw new StreamCutError('The answer was cut off: the connection closed before the server finished it.');
      }
      buf += chunk.value;
      let end;
      while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
        const frame = buf.slice(0, end);
        buf = buf.slice(end).replace(/^\r?\n\r?\n/, '');
        const data = frame
          .split(/\r?\n/)
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('\n');
        if (data === '') continue;
        if (data === '[DONE]') return;
        const payload = JSON.parse(data);
        if (payload.error) throw new ApiError(500, payload.error.message || 'The server reported an error.', payload.error.code || null);
        if (payload.choices?.some((c) => c.finish_reason)) finished = true;
        yield payload;
      }
    }
  } finally {
    // Ends the connection if the consumer stopped early (the server then cancels the request).
    reader.cancel().catch(() => undefined);
  }
}
