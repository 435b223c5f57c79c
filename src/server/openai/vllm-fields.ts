// vLLM's own request fields. Its structured outputs (guided_json, guided_choice, and the newer
// structured_outputs object) are enforced as response_format is; min_tokens,
// thinking_token_budget and include_stop_str_in_output reach the engine and the output parser. The ones that would change
// the answer in ways this server cannot honour (regex and grammar constraints, beam search, prompt
// logprobs) get a 400 naming them: dropped, as unknown fields are, they would leave a client that
// relies on them with an answer it did not ask for (free text where it expects a pattern) and no
// sign of it.
import { z } from 'zod';
import { withWrittenKeyOrder } from '../../parse/ordered-json.js';
import { badRequest } from '../errors.js';
import { jsonObject, type ResponseFormat } from './schema-common.js';

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
  guided_regex: z.string().nullish(),
  guided_grammar: z.string().nullish(),
  structured_outputs: z
    .object({
      json: jsonSchemaField.nullish(),
      choice: choiceField.nullish(),
      json_object: z.boolean().nullish(),
      regex: z.string().nullish(),
      grammar: z.string().nullish(),
      structural_tag: z.unknown().optional(),
    })
    .nullish(),
  min_tokens: z.number().int().min(0).nullish(),
  thinking_token_budget: z.number().int().min(0).nullish(),
  include_stop_str_in_output: z.boolean().nullish(),
  use_beam_search: z.boolean().nullish(),
  prompt_logprobs: z.number().int().nullish(),
};

type VllmFields = { [K in keyof typeof vllmFields]?: z.infer<(typeof vllmFields)[K]> };

/** The answer is exactly one of these strings (guided_choice), as raw text. */
export interface ChoiceFormat {
  type: 'choice';
  choices: string[];
}

/** What a request asks its answer to be: response_format, or a vLLM structured-output field. */
export type AnswerFormat = ResponseFormat | ChoiceFormat;

interface Fields extends VllmFields {
  response_format?: ResponseFormat | null;
}

/**
 * The request's answer format from response_format or vLLM's fields (400 when it names more
 * than one), after refusing the vLLM fields this server cannot honour.
 */
export function answerFormat(body: Fields): AnswerFormat | undefined {
  refuseUnsupported(body);
  const so = body.structured_outputs ?? undefined;
  const asked: [string, () => AnswerFormat][] = [];
  if (body.response_format && body.response_format.type !== 'text') asked.push(['response_format', () => body.response_format!]);
  if (body.guided_json != null) asked.push(['guided_json', () => schemaFormat(body.guided_json!, 'guided_json')]);
  if (body.guided_choice != null) asked.push(['guided_choice', () => ({ type: 'choice', choices: body.guided_choice! })]);
  if (so?.json != null) asked.push(['structured_outputs.json', () => schemaFormat(so.json!, 'structured_outputs.json')]);
  if (so?.choice != null) asked.push(['structured_outputs.choice', () => ({ type: 'choice', choices: so.choice! })]);
  if (so?.json_object === true) asked.push(['structured_outputs.json_object', () => ({ type: 'json_object' })]);
  if (asked.length > 1)
    throw badRequest(`${asked.map(([name]) => name).join(' and ')} each constrain the answer; send only one of them.`, asked[1][0]);
  return asked.length === 1 ? asked[0][1]() : body.response_format ?? undefined;
}

function refuseUnsupported(body: Fields): void {
  const so = body.structured_outputs ?? undefined;
  const fix = 'use response_format ({"type": "json_schema"}, where "pattern" constrains a string) or guided_json / guided_choice';
  const constraint: [string, unknown][] = [
    ['guided_regex', body.guided_regex],
    ['guided_grammar', body.guided_grammar],
    ['structured_outputs.regex', so?.regex],
    ['structured_outputs.grammar', so?.grammar],
    ['structured_outputs.structural_tag', so?.structural_tag],
  ];
  for (const [name, value] of constraint)
    if (value !== undefined && value !== null) throw unsupported(name, `${name} is not supported by this server; ${fix}.`);
  if (body.use_beam_search) throw unsupported('use_beam_search', 'Beam search is not supported by this server; leave use_beam_search out to sample.');
  if (body.prompt_logprobs != null)
    throw unsupported('prompt_logprobs', 'prompt_logprobs is not supported by this server; on /v1/completions, "echo": true with "logprobs" returns the prompt\'s logprobs.');
}

function unsupported(param: string, message: string) {
  return badRequest(message, param, 'unsupported_parameter');
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
