// Request fields that /v1/chat/completions and /v1/completions share, as zod schemas. Unknown
// fields are dropped (clients send many we have no use for); known ones are range-checked so a
// bad value gets a 400 naming it instead of reaching the engine.
import { z } from 'zod';
import { MAX_LOGIT_BIAS, MAX_STOP_STRINGS, MAX_STOP_TOKEN_IDS, tooMany, tooManyItems } from './limits.js';

const finite = () => z.number().refine(Number.isFinite, 'expected a finite number');

/**
 * Any JSON object (a JSON Schema, a call's arguments, template kwargs), refused with z.record's
 * errors but passed on as the client's own object: z.record returns a copy, a plain object again,
 * which would list integer-like keys first and lose the key order the body was read with (http.ts),
 * the order the prompt and the grammar follow, and the text of the numbers it holds (1.0, kept
 * against the object itself: parse/json-numbers.ts).
 */
export const jsonObject = () =>
  z.custom<Record<string, unknown>>().superRefine((value, ctx) => {
    // continue: false, as a type error: a union then tries its other branches and reports them all.
    if (typeof value !== 'object' || value === null || Array.isArray(value)) ctx.addIssue({ code: 'invalid_type', expected: 'record', input: value, continue: false });
  });

export const samplingFields = {
  /** Left out, null or "": the served model, as vLLM takes it (clients with no model setting send ""). */
  model: z.string().nullish(),
  max_tokens: z.number().int().min(0).nullish(),
  temperature: finite().min(0).max(2).nullish(),
  top_p: finite().min(0).max(1).nullish(),
  /** -1 or 0: off (vLLM's spelling). */
  top_k: z.number().int().min(-1).nullish(),
  min_p: finite().min(0).max(1).nullish(),
  presence_penalty: finite().min(-2).max(2).nullish(),
  frequency_penalty: finite().min(-2).max(2).nullish(),
  repetition_penalty: finite().gt(0).max(10).nullish(),
  seed: z.number().int().nullish(),
  stop: z
    .union([z.string(), z.array(z.string())], { error: `expected a string or an array of at most ${MAX_STOP_STRINGS} strings` })
    .refine((s) => typeof s === 'string' || s.length <= MAX_STOP_STRINGS, tooManyItems(MAX_STOP_STRINGS, 'stop strings', 'send fewer'))
    .nullish(),
  /** vLLM: extra token ids that end generation. */
  stop_token_ids: z.array(z.number().int().min(0)).max(MAX_STOP_TOKEN_IDS, tooMany(MAX_STOP_TOKEN_IDS, 'stop token ids', 'send fewer')).nullish(),
  /** OpenAI: token id (as a string key) -> bias in [-100, 100] added to its logit. */
  logit_bias: z
    .record(z.string().regex(/^\d+$/, 'keys must be token ids (non-negative integers as strings)'), finite().min(-100).max(100))
    .refine((m) => Object.keys(m).length <= MAX_LOGIT_BIAS, tooMany(MAX_LOGIT_BIAS, 'logit_bias entries', 'send fewer'))
    .nullish(),
  n: z.number().int().min(1).max(64).nullish(),
  stream: z.boolean().nullish(),
  /** continuous_usage_stats (vLLM's): every chunk carries the usage so far. */
  stream_options: z.object({ include_usage: z.boolean().nullish(), continuous_usage_stats: z.boolean().nullish() }).nullish(),
  ignore_eos: z.boolean().nullish(),
  skip_special_tokens: z.boolean().nullish(),
  user: z.string().nullish(),
};

/** vLLM's structural tag (xgrammar's): free text whose triggers each open a structure (begin, a JSON value of its schema, end). */
export const structuralTagSchema = z.object({
  type: z.literal('structural_tag'),
  structures: z
    .array(z.object({ begin: z.string().min(1, 'a structure begins with its trigger'), schema: z.union([jsonObject(), z.boolean()]).nullish(), end: z.string() }))
    .min(1, 'send at least one structure')
    .max(64, 'at most 64 structures are accepted'),
  triggers: z.array(z.string().min(1, 'a trigger is at least one character')).min(1, 'send at least one trigger').max(64, 'at most 64 triggers are accepted'),
});

export const responseFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    json_schema: z.object({
      name: z.string().max(64),
      description: z.string().optional(),
      schema: jsonObject().optional(),
      strict: z.boolean().nullish(),
    }),
  }),
  structuralTagSchema,
]);
export type ResponseFormat = z.infer<typeof responseFormatSchema>;

/** The fields of either request that map onto engine sampling and limits. */
export interface CommonRequest {
  model?: string | null;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  repetition_penalty?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  stop_token_ids?: number[] | null;
  logit_bias?: Record<string, number> | null;
  n?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null; continuous_usage_stats?: boolean | null } | null;
  ignore_eos?: boolean | null;
  skip_special_tokens?: boolean | null;
}
