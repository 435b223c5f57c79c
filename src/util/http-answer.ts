// A failed HTTP answer in one line, for the commands that talk to a server (grpst chat, grpst
// bench): the message of an error envelope (OpenAI's and Anthropic's `{"error":{"message"}}`,
// Ollama's `{"error":"..."}`), else the status's body summed up by its type and size. A server that
// is not an OpenAI-compatible API (a web server, a proxy's error page) answers with HTML, which
// would otherwise be printed whole.

export interface AnswerSummary {
  /** The envelope's message, a short plain-text body, or "text/html, 469 bytes". */
  text: string;
  /** The envelope's error code (OpenAI's `code`, e.g. context_length_exceeded), where it has one. */
  code?: string;
  /** The body was an error envelope: the server speaks an API, it refused this request. */
  envelope: boolean;
}

export function summarizeAnswer(contentType: string | string[] | undefined, body: string): AnswerSummary {
  const type = (Array.isArray(contentType) ? contentType[0] : contentType)?.split(';')[0].trim() || undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  const error = (parsed as { error?: unknown } | null)?.error;
  if (typeof error === 'string' && error !== '') return { text: error, envelope: true };
  if (error !== null && typeof error === 'object' && typeof (error as { message?: unknown }).message === 'string') {
    const { message, code } = error as { message: string; code?: unknown };
    return { text: message, code: typeof code === 'string' ? code : undefined, envelope: true };
  }
  const oneLine = body.replace(/\s+/g, ' ').trim();
  // A short plain answer ("Not Found", `{"detail":"Not Found"}`) says more than its size would.
  if (oneLine !== '' && oneLine.length <= 120 && !/^\s*</.test(oneLine) && (parsed !== undefined || type === undefined || type === 'text/plain')) return { text: oneLine, envelope: false };
  const bytes = Buffer.byteLength(body);
  return { text: bytes === 0 ? `${type ?? 'no content type'}, empty body` : `${type ?? 'no content type'}, ${bytes} bytes`, envelope: false };
}
