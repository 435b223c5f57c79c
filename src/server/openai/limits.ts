// How many items one request may hold. Each bounds work the server does before any token is
// generated (validation, template rendering, grammar compilation) that the body size alone does
// not: a 16 MB body holds a million empty messages. Past a limit the answer is a 400 naming the
// field, the limit and what to do.

/** Messages of one chat request (OpenAI's own limit). */
export const MAX_MESSAGES = 2048;
/** Content parts of one message. */
export const MAX_CONTENT_PARTS = 256;
/** Tool calls of one assistant message. */
export const MAX_TOOL_CALLS = 128;
/** Tools of one request (OpenAI's own limit). */
export const MAX_TOOLS = 128;
/** Stop strings of one request. */
export const MAX_STOP_STRINGS = 16;
/** Stop token ids of one request. */
export const MAX_STOP_TOKEN_IDS = 64;
/** OpenAI accepts up to 300 logit_bias entries. */
export const MAX_LOGIT_BIAS = 300;
/** Bad words of one request (vLLM's bad_words); each is tokenized twice. */
export const MAX_BAD_WORDS = 256;

const fmt = (n: number) => n.toLocaleString('en-US');

/** The message of a count limit: "at most 2,048 messages are accepted in one request; ..." */
export function tooMany(limit: number, what: string, fix: string): string {
  return `at most ${fmt(limit)} ${what} are accepted in one request; ${fix}`;
}

/** The same refusal as a refine's options, for lists a union or a refine checks (string | array): OpenAI's code for an over-long array. */
export function tooManyItems(limit: number, what: string, fix: string): { error: string; params: { code: string } } {
  return { error: tooMany(limit, what, fix), params: { code: 'array_above_max_length' } };
}
