// vLLM's own request fields. Its structured outputs (guided_json, guided_choice, guided_regex,
// guided_grammar, structural tags, and the newer structured_outputs object) are enforced as
// response_format is; min_tokens, thinking_token_budget, include_stop_str_in_output,
// allowed_token_ids, bad_words and truncate_prompt_tokens reach the engine and the output parser
// (token-rules.ts). The ones that would change the answer in ways this server cannot honour (a
// request's own chat template, a priority the scheduling policy ignores, ...) get a 400 naming
// them: dropped, as unknown fields are, they would leave a client that relies on them with an
// answer it did not ask for (free text where it expects a pattern) and no sign of it. Fields that
// change nothing for this model (add_special_tokens: Qwen3 has no BOS; guided_decoding_backend:
// there is one) are accepted and have no effect.
import { z } from 'zod';
import type { SchedulingPolicy } from '../../engine/types.js';
import { withWrittenKeyOrder } from '../../parse/ordered-json.js';
import { badRequest } from '../errors.js';
import { MAX_BAD_WORDS, tooMany } from './limits.js';
import type { JsonOptions } from '../../structured/grammar.js';
import { jsonObject, structuralTagSchema, type ResponseFormat } from './schema-common.js';

/** Choices of one guided_choice request; each becomes grammar, so the list is bounded. */
export const MAX_GUIDED_CHOICES = 1024;

/** vLLM takes a JSON Schema as an object or as its JSON text. */
const jsonSchemaField = z.union([z.string(), jsonObject(), z.boolean()], {
  error: 'expected a JSON Schema (an object, or its JSON text)',
});
const choiceField = z
  .array(z.string())
  .min(1, 'send at least one choice')
  .max(MAX_GUIDED_CHOICES, `at most ${MAX_GUIDED_CHOICES} choices are accepted in one request`);

export const vllmFields = {
  guided_json: jsonSchemaField.nullish(),
  guided_choice: choiceField.nullish(),
  guided_regex: z.string().min(1, 'send a regular expression, or leave guided_regex out').nullish(),
  guided_grammar: z.string().min(1, 'send a GBNF grammar, or leave guided_grammar out').nullish(),
  structured_outputs: z
    .object({
      json: jsonSchemaField.nullish(),
      choice: choiceField.nullish(),
      json_object: z.boolean().nullish(),
      regex: z.string().min(1, 'send a regular expression, or leave regex out').nullish(),
      grammar: z.string().min(1, 'send a GBNF grammar, or leave grammar out').nullish(),
      /** A structural tag as JSON text (vLLM's) or as an object: structuralTagFormat. */
      structural_tag: z.unknown().optional(),
      /** JSON without any whitespace (by default one space may follow ':' and ','). */
      disable_any_whitespace: z.boolean().nullish(),
      /** Schema objects without "additionalProperties" take no undeclared keys (a free-form one is {}). */
      disable_additional_properties: z.boolean().nullish(),
      /** There is one backend and nothing to fall back from: accepted, no effect. */
      disable_fallback: z.boolean().nullish(),
      // Refused unless null (refuseUnsupported): any JSON here, so the refusal is what the client reads.
      whitespace_pattern: z.unknown().optional(),
    })
    // An unknown key is a 400 naming it, not a constraint silently left out.
    .strict()
    .nullish(),
  min_tokens: z.number().int().min(0).nullish(),
  thinking_token_budget: z.number().int().min(0).nullish(),
  include_stop_str_in_output: z.boolean().nullish(),
  /** n beams searched, the n best returned (beam-search.ts). */
  use_beam_search: z.boolean().nullish(),
  /** Beams rank by cumulative logprob / length ^ length_penalty. */
  length_penalty: z.number().nullish(),
  /** Alternatives per prompt position (prompt-logprobs.ts). */
  prompt_logprobs: z.number().int().nullish(),
  /** Only these tokens may be sampled. */
  allowed_token_ids: z.array(z.number().int().min(0)).min(1, 'send at least one token id, or leave allowed_token_ids out to allow every token').nullish(),
  /** Words never generated: a form of one token banned everywhere, a longer one as a sequence (token-rules.ts). */
  bad_words: z
    .array(z.string().min(1, 'a bad word is at least one character'))
    .max(MAX_BAD_WORDS, tooMany(MAX_BAD_WORDS, 'bad words', 'send fewer'))
    .nullish(),
  /** Keep only the prompt's last N tokens; -1: as many as a prompt may have. */
  truncate_prompt_tokens: z
    .number()
    .int()
    .min(-1)
    .refine((n) => n !== 0, 'expected a number of tokens to keep (at least 1), or -1 for as many as a prompt may have')
    .nullish(),
  /** Lower runs first under the conf's scheduling_policy: priority (requestPriority). */
  priority: z.number().int().min(-(2 ** 31)).max(2 ** 31 - 1).nullish(),
  // Refused whatever their value but null (refuseUnsupported), so they take any JSON here: the
  // refusal, not a type error, is what the client reads.
  guided_whitespace_pattern: z.unknown().optional(),
  structural_tag: z.unknown().optional(),
  logits_processors: z.unknown().optional(),
  kv_transfer_params: z.unknown().optional(),
  /** Logprobs name tokens "token_id:<id>" instead of by their text. */
  return_tokens_as_token_ids: z.boolean().nullish(),
  /** Only requests with the same salt share cached prompt blocks (the engine's prefix cache). */
  cache_salt: z.string().min(1, 'send a salt of at least one character, or leave cache_salt out').nullish(),
  /** Each choice lists its token ids, and the answer the prompt's (vllm-output.ts). */
  return_token_ids: z.boolean().nullish(),
  /** Neutral for this model: Qwen3's tokenizer adds no BOS or EOS (its template writes what the chat needs). */
  add_special_tokens: z.boolean().nullish(),
};

/** vLLM's fields of /v1/chat/completions alone (chat-render.ts reads chat_template and documents). */
export const vllmChatFields = {
  best_of: z.number().int().min(1).nullish(),
  /** true: the answer starts with the final message when that is the assistant's (chat-messages.ts echoedMessage). */
  echo: z.boolean().nullish(),
  /** For templates that read them (retrieval-augmented generation). */
  documents: z.array(jsonObject()).nullish(),
  chat_template: z.unknown().optional(),
  /** false: the model still thinks, and the answer leaves its reasoning out (vLLM's). */
  include_reasoning: z.boolean().nullish(),
};

type VllmFields = { [K in keyof typeof vllmFields]?: z.infer<(typeof vllmFields)[K]> };

/** The answer is exactly one of these strings (guided_choice), as raw text. */
export interface ChoiceFormat {
  type: 'choice';
  choices: string[];
}

/** The answer is text that this ECMAScript regular expression matches whole (guided_regex). */
export interface RegexFormat {
  type: 'regex';
  pattern: string;
}

/** The answer is text of this GBNF grammar, from its rule `root` (guided_grammar). */
export interface GrammarFormat {
  type: 'grammar';
  grammar: string;
}

/**
 * What a request asks its answer to be: response_format, or a vLLM structured-output field; json:
 * structured_outputs' layout options (disable_any_whitespace, disable_additional_properties).
 */
export type AnswerFormat = (ResponseFormat | ChoiceFormat | RegexFormat | GrammarFormat) & { json?: JsonOptions };

interface Fields extends VllmFields {
  response_format?: ResponseFormat | null;
}

/**
 * The request's answer format from response_format or vLLM's fields (400 when it names more
 * than one), after refusing the vLLM fields this server cannot honour.
 */
export function answerFormat(body: Fields): AnswerFormat | undefined {
  refuseUnsupported(body);
  const asked = askedFormats(body);
  if (asked.length > 1)
    throw badRequest(`${asked.map(([name]) => name).join(' and ')} each constrain the answer; send only one of them.`, asked[1][0]);
  return asked.length === 1 ? asked[0][1]() : body.response_format ?? undefined;
}

/** The request field that asks for a constrained answer (response_format, guided_json, ...), if one does. */
export function answerFormatField(body: Fields): string | undefined {
  return askedFormats(body)[0]?.[0];
}

function askedFormats(body: Fields): [string, () => AnswerFormat][] {
  const so = body.structured_outputs ?? undefined;
  const asked: [string, () => AnswerFormat][] = [];
  if (body.response_format && body.response_format.type !== 'text') asked.push(['response_format', () => body.response_format!]);
  if (body.guided_json != null) asked.push(['guided_json', () => schemaFormat(body.guided_json!, 'guided_json')]);
  if (body.guided_choice != null) asked.push(['guided_choice', () => ({ type: 'choice', choices: body.guided_choice! })]);
  if (body.guided_regex != null) asked.push(['guided_regex', () => ({ type: 'regex', pattern: body.guided_regex! })]);
  if (body.guided_grammar != null) asked.push(['guided_grammar', () => ({ type: 'grammar', grammar: body.guided_grammar! })]);
  // structured_outputs' layout options hold for the format it asks for.
  const json: JsonOptions | undefined =
    so?.disable_any_whitespace || so?.disable_additional_properties
      ? { ...(so.disable_any_whitespace && { compact: true }), ...(so.disable_additional_properties && { closedObjects: true }) }
      : undefined;
  const laidOut = (format: AnswerFormat): AnswerFormat => (json ? { ...format, json } : format);
  if (so?.json != null) asked.push(['structured_outputs.json', () => laidOut(schemaFormat(so.json!, 'structured_outputs.json'))]);
  if (so?.choice != null) asked.push(['structured_outputs.choice', () => laidOut({ type: 'choice', choices: so.choice! })]);
  if (so?.regex != null) asked.push(['structured_outputs.regex', () => laidOut({ type: 'regex', pattern: so.regex! })]);
  if (so?.grammar != null) asked.push(['structured_outputs.grammar', () => laidOut({ type: 'grammar', grammar: so.grammar! })]);
  if (so?.json_object === true) asked.push(['structured_outputs.json_object', () => laidOut({ type: 'json_object' })]);
  if (so?.structural_tag != null)
    asked.push(['structured_outputs.structural_tag', () => laidOut(structuralTagFormat(so.structural_tag, 'structured_outputs.structural_tag'))]);
  if (body.structural_tag != null) asked.push(['structural_tag', () => structuralTagFormat(body.structural_tag, 'structural_tag')]);
  return asked;
}

function refuseUnsupported(body: Fields): void {
  const refused: [string, boolean, string][] = [
    ['guided_whitespace_pattern', body.guided_whitespace_pattern != null, 'guided_whitespace_pattern is not supported: JSON is written compact, with at most one space after ":" and ","; leave it out (structured_outputs.disable_any_whitespace: true writes no whitespace at all).'],
    ['structured_outputs.whitespace_pattern', body.structured_outputs?.whitespace_pattern != null, 'structured_outputs.whitespace_pattern is not supported: JSON is written compact, with at most one space after ":" and ","; leave it out, or send disable_any_whitespace: true for no whitespace at all.'],
    ['logits_processors', body.logits_processors != null && !(Array.isArray(body.logits_processors) && body.logits_processors.length === 0), 'logits_processors are not supported: this server runs no code a request names; use logit_bias, allowed_token_ids or bad_words, or leave it out.'],
    ['kv_transfer_params', body.kv_transfer_params != null, 'kv_transfer_params is not supported: this server does not hand KV caches to other servers; leave it out.'],
  ];
  for (const [name, asked, message] of refused) if (asked) throw unsupported(name, message);
}

/**
 * vLLM's priority: under the priority policy it orders admission and preemption (lower first);
 * under first come, first served any value but 0 is a 400, as vLLM refuses it, so a client that
 * counts on it learns it has no effect.
 */
export function requestPriority(priority: number | null | undefined, policy: SchedulingPolicy): number | undefined {
  if (priority == null || priority === 0) return undefined;
  if (policy !== 'priority')
    throw unsupported('priority', `priority ${priority} needs priority scheduling, and this server serves requests first come, first served: set scheduling_policy: priority in the inference conf (inferer_args), or leave priority out (or send 0).`);
  return priority;
}

/** best_of other than n would rank candidates, which this server does not do (chat and completions alike). */
export function checkBestOf(bestOf: number | null | undefined, n: number): void {
  if (bestOf != null && bestOf !== n) throw badRequest('best_of must equal n (candidates are not ranked); leave it out.', 'best_of');
}

export function unsupported(param: string, message: string) {
  return badRequest(message, param, 'unsupported_parameter');
}

/** vLLM's structural tag, as JSON text or an object ({structures, triggers}, "type" optional) -> response_format structural_tag. */
function structuralTagFormat(given: unknown, param: string): ResponseFormat {
  let value = given;
  if (typeof given === 'string') {
    try {
      value = JSON.parse(given);
    } catch {
      throw badRequest(`${param} is a string that is not valid JSON; send {"structures": [...], "triggers": [...]} as an object or as its JSON text.`, param);
    }
  }
  const typed = value && typeof value === 'object' && !Array.isArray(value) && !('type' in value) ? { type: 'structural_tag', ...value } : value;
  const parsed = structuralTagSchema.safeParse(typed);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length > 0 ? `${param}.${issue.path.join('.')}` : param;
    throw badRequest(`${where}: ${issue.message} (a structural tag is {"structures": [{"begin", "schema", "end"}], "triggers": [...]}).`, where);
  }
  return parsed.data;
}

/** A JSON Schema sent as an object, a boolean, or JSON text -> response_format json_schema. */
function schemaFormat(given: string | boolean | Record<string, unknown>, param: string): ResponseFormat {
  let schema: unknown = given;
  if (typeof given === 'string') {
    try {
      // Its text read as the body is (http.ts): the properties' order is the order the grammar writes them in.
      schema = withWrittenKeyOrder(given, JSON.parse(given));
    } catch {
      throw badRequest(`${param} is a string that is not valid JSON; send the JSON Schema as an object or as its JSON text.`, param);
    }
  }
  if (schema === false) throw badRequest(`${param} is the schema false, which no answer satisfies.`, param);
  if (schema === true) return { type: 'json_schema', json_schema: { name: param } };
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
    throw badRequest(`${param} must be a JSON Schema: an object (or true).`, param, 'invalid_type');
  return { type: 'json_schema', json_schema: { name: param, schema: schema as Record<string, unknown> } };
}
