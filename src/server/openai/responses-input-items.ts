// GET /v1/responses/{id}/input_items: the items a response was created from, listed as OpenAI
// lists them. Each item is built and serialized once, when its response is stored, with the id
// the client gave it or a new one, so every listing (and every `after` cursor) sees the same ids.
import { badRequest } from '../errors.js';
import { itemId } from './responses-output.js';
import type { ResponseInputItem, ResponsesRequest } from './schema-responses.js';

/** One input item as it is listed, serialized; its id kept apart for first_id, last_id and after. */
export interface StoredInputItem {
  id: string;
  json: string;
}

/** The request's `input` as listed items, in the order sent (a string is one user message). */
export function storedInputItems(input: ResponsesRequest['input']): StoredInputItem[] {
  const items: ResponseInputItem[] = typeof input === 'string' ? [{ type: 'message', role: 'user', content: input }] : input;
  return items.map((item) => {
    const listed = listedItem(item);
    return { id: listed.id, json: JSON.stringify(listed) };
  });
}

type MessageInput = Extract<ResponseInputItem, { role: unknown }>;
type FunctionCallInput = Extract<ResponseInputItem, { type: 'function_call' }>;
type FunctionCallOutputInput = Extract<ResponseInputItem, { type: 'function_call_output' }>;
type ReasoningInput = Extract<ResponseInputItem, { type: 'reasoning' }>;

/**
 * An input item in the shape OpenAI lists it: typed, with an id and a status, a message's content
 * as parts. The request was already read by inputMessages, so only the types it takes arrive here.
 */
function listedItem(item: ResponseInputItem): { id: string } & Record<string, unknown> {
  const status = typeof item.status === 'string' ? item.status : 'completed';
  const type = item.type ?? 'message';
  if (type === 'message') {
    const m = item as MessageInput;
    return { id: m.id ?? itemId('msg'), type, status, role: m.role, content: messageParts(m.content, m.role === 'assistant') };
  }
  if (type === 'function_call') {
    const c = item as FunctionCallInput;
    return { id: c.id ?? itemId('fc'), type, status, call_id: c.call_id, name: c.name, arguments: c.arguments };
  }
  if (type === 'function_call_output') {
    const o = item as FunctionCallOutputInput;
    return { id: o.id ?? itemId('fco'), type, status, call_id: o.call_id, output: o.output };
  }
  if (type === 'reasoning') {
    const r = item as ReasoningInput;
    const listed: { id: string } & Record<string, unknown> = { id: r.id ?? itemId('rs'), type, status, summary: r.summary ?? [] };
    if (r.content) listed.content = r.content;
    return listed;
  }
  throw new Error(`input item of type ${type} reached the input item list`);
}

type MessageContent = MessageInput['content'];

/** A message's content as typed parts: input_text for the user's side, output_text (with its annotations) for the assistant's. */
function messageParts(content: MessageContent, assistant: boolean): Record<string, unknown>[] {
  const textType = assistant ? 'output_text' : 'input_text';
  const text = (t: string) => (assistant ? { type: textType, text: t, annotations: [] } : { type: textType, text: t });
  if (typeof content === 'string') return [text(content)];
  return content.map((part) => {
    // Chat's plain "text" parts are read as this role's text kind.
    if (part.type === 'text' || part.type === textType) return text(part.text ?? '');
    return { ...part };
  });
}

export interface InputItemsQuery {
  limit: number;
  order: 'asc' | 'desc';
  /** An item id: the page starts after it, in the chosen order. */
  after?: string;
}

/** include values OpenAI's API knows. None adds anything to the items listed here (no images, no hosted tool results), so they are accepted and ignored. */
const knownIncludes = new Set([
  'file_search_call.results',
  'web_search_call.results',
  'web_search_call.action.sources',
  'message.input_image.image_url',
  'computer_call_output.output.image_url',
  'code_interpreter_call.outputs',
  'reasoning.encrypted_content',
  'message.output_text.logprobs',
]);

/** limit, order, after and include from the request's query string, each checked; 400 naming the one that is wrong. */
export function inputItemsQuery(url: string | undefined): InputItemsQuery {
  const raw = url ?? '';
  const q = raw.indexOf('?');
  const params = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : '');
  const once = (name: string): string | undefined => {
    const values = params.getAll(name);
    if (values.length > 1) throw badRequest(`${name} is given ${values.length} times; send it once.`, name);
    return values[0];
  };
  const limitText = once('limit');
  const limit = limitText === undefined ? 20 : /^\d{1,3}$/.test(limitText) ? Number(limitText) : NaN;
  if (!(limit >= 1 && limit <= 100)) throw badRequest(`Invalid limit ${show(limitText)}: send an integer from 1 to 100 (the default is 20).`, 'limit');
  const order = once('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw badRequest(`Invalid order ${show(order)}: send "asc" or "desc" (the default is "desc").`, 'order');
  // The openai SDKs send arrays as include[]=...; include=... is read too.
  for (const value of [...params.getAll('include'), ...params.getAll('include[]')])
    if (!knownIncludes.has(value)) throw badRequest(`Invalid include ${show(value)}: send any of ${[...knownIncludes].join(', ')}.`, 'include');
  return { limit, order, after: once('after') };
}

const show = (value: string | undefined) => JSON.stringify((value ?? '').slice(0, 100));

/** One page of the list object, serialized: the stored items joined as they were kept. */
export function inputItemsPage(items: readonly StoredInputItem[], query: InputItemsQuery): string {
  const ordered = query.order === 'asc' ? items : [...items].reverse();
  let start = 0;
  if (query.after !== undefined) {
    const at = ordered.findIndex((item) => item.id === query.after);
    if (at < 0) throw badRequest(`Invalid after ${show(query.after)}: it is not the id of an input item of this response. Send the last_id of the page before.`, 'after');
    start = at + 1;
  }
  const page = ordered.slice(start, start + query.limit);
  const firstId = JSON.stringify(page[0]?.id ?? null);
  const lastId = JSON.stringify(page.at(-1)?.id ?? null);
  return `{"object":"list","data":[${page.map((item) => item.json).join(',')}],"first_id":${firstId},"last_id":${lastId},"has_more":${start + page.length < ordered.length}}`;
}
