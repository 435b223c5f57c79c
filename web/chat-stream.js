// Streams a chat completion from /v1/chat/completions with fetch: SSE frames parsed as they
// arrive, OpenAI's error envelope turned into an Error that says what to do. Aborting the signal
// closes the connection, which makes the server cancel the generation and free its slot.

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

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
 * An error frame sent after streaming began is thrown as an ApiError.
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
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
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
        yield payload;
      }
    }
  } finally {
    // Ends the connection if the consumer stopped early (the server then cancels the request).
    reader.cancel().catch(() => undefined);
  }
}
