// GET /v1/responses/{id}/input_items end to end: the official openai client (its list call and its
// auto-pagination) against the real server on a tiny checkpoint. A stored response lists the
// items its request sent as input, with ids that stay the same from call to call, in either
// order, a page at a time; what is not stored, or no longer, is a 404 like GET of the response.
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResponseStore } from '../../src/server/responses-store.js';
import { get, loadTiny, post, serve, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let s: TestServer;
let client: OpenAI;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  s = await serve(model);
  client = s.client;
});

afterAll(async () => {
  await s?.server.close();
  await model?.engine.close();
});

const brief = { model: 'qwen3', temperature: 0, max_output_tokens: 1 } as const;

/** Every item of a response through the SDK's auto-pagination (item by item, and page by page: how many it fetched). */
async function listAll(id: string, query: OpenAI.Responses.InputItemListParams) {
  const items: OpenAI.Responses.ResponseItem[] = [];
  for await (const item of client.responses.inputItems.list(id, query)) items.push(item);
  let pages = 0;
  for await (const page of (await client.responses.inputItems.list(id, query)).iterPages()) {
    pages++;
    expect(page.data.length).toBeLessThanOrEqual(query.limit ?? 20);
  }
  return { items, pages };
}

const conversation: OpenAI.Responses.ResponseInputItem[] = [
  { role: 'developer', content: 'Be brief.' },
  // Any input item may carry its own id (the SDK's type for an input message leaves it out).
  { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Weather in Paris?' }], id: 'msg_given_by_client' } as OpenAI.Responses.ResponseInputItem,
  { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
  { type: 'function_call_output', call_id: 'call_1', output: 'sunny' },
  { role: 'assistant', content: 'It is sunny.' },
  { role: 'user', content: 'And tomorrow?' },
];

describe('GET /v1/responses/{id}/input_items', () => {
  it('a string input is one user message with an input_text part, in a list object whose ids stay the same', async () => {
    const r = await client.responses.create({ ...brief, input: 'Tell me about the sea.' });
    const page = await client.responses.inputItems.list(r.id);
    expect(page.data).toEqual([{ id: expect.stringMatching(/^msg_[0-9a-f]{32}$/), type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_text', text: 'Tell me about the sea.' }] }]);
    expect(page.has_more).toBe(false);
    const raw = await get(`${s.url}/v1/responses/${r.id}/input_items`);
    expect(raw.status).toBe(200);
    expect(raw.json).toEqual({ object: 'list', data: page.data, first_id: page.data[0].id, last_id: page.data[0].id, has_more: false });
  });

  it('items input: messages, function_call and function_call_output in the order sent (asc) or reversed (desc, the default)', async () => {
    const r = await client.responses.create({ ...brief, instructions: 'Not an input item.', input: conversation });
    const asc = (await client.responses.inputItems.list(r.id, { order: 'asc' })).data as any[];
    expect(asc.map((i) => [i.type, i.role])).toEqual([
      ['message', 'developer'],
      ['message', 'user'],
      ['function_call', undefined],
      ['function_call_output', undefined],
      ['message', 'assistant'],
      ['message', 'user'],
    ]);
    // The client's own id is kept; the others are new, one of a kind, and the same on every call.
    expect(asc[1].id).toBe('msg_given_by_client');
    expect(asc.map((i) => i.id.split('_')[0])).toEqual(['msg', 'msg', 'fc', 'fco', 'msg', 'msg']);
    expect(new Set(asc.map((i) => i.id)).size).toBe(asc.length);
    expect(asc[0].content).toEqual([{ type: 'input_text', text: 'Be brief.' }]);
    expect(asc[2]).toMatchObject({ call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}', status: 'completed' });
    expect(asc[3]).toMatchObject({ call_id: 'call_1', output: 'sunny', status: 'completed' });
    expect(asc[4].content).toEqual([{ type: 'output_text', text: 'It is sunny.', annotations: [] }]);
    const desc = (await client.responses.inputItems.list(r.id)).data;
    expect(desc).toEqual([...asc].reverse());
    expect((await client.responses.inputItems.list(r.id, { order: 'desc' })).data).toEqual(desc);
  });

  it('limit pages the list: has_more, first_id and last_id, and after continues in the chosen order', async () => {
    const r = await client.responses.create({ ...brief, input: conversation });
    const all = (await client.responses.inputItems.list(r.id, { order: 'asc' })).data;
    const ids = all.map((i) => i.id);
    const first = await get(`${s.url}/v1/responses/${r.id}/input_items?limit=4&order=asc`);
    expect(first.json).toMatchObject({ first_id: ids[0], last_id: ids[3], has_more: true });
    const rest = await get(`${s.url}/v1/responses/${r.id}/input_items?limit=4&order=asc&after=${ids[3]}`);
    expect(rest.json).toMatchObject({ data: all.slice(4), first_id: ids[4], last_id: ids[5], has_more: false });
    const newest = await client.responses.inputItems.list(r.id, { limit: 2 });
    expect(newest.data.map((i) => i.id)).toEqual([ids[5], ids[4]]);
    expect(newest.has_more).toBe(true);
    const older = await client.responses.inputItems.list(r.id, { limit: 2, after: ids[4] });
    expect(older.data.map((i) => i.id)).toEqual([ids[3], ids[2]]);
    // A page that ends exactly at the last item says there is no more.
    const tail = await get(`${s.url}/v1/responses/${r.id}/input_items?limit=2&after=${ids[2]}`);
    expect(tail.json).toMatchObject({ first_id: ids[1], last_id: ids[0], has_more: false });
    // The SDK's auto-pagination follows has_more and after through every page, in both orders.
    expect(await listAll(r.id, { limit: 2, order: 'asc' })).toEqual({ items: all, pages: 3 });
    expect(await listAll(r.id, { limit: 4 })).toEqual({ items: [...all].reverse(), pages: 2 });
    expect(await listAll(r.id, { limit: 100, include: ['message.input_image.image_url', 'reasoning.encrypted_content'] })).toEqual({ items: [...all].reverse(), pages: 1 });
  });

  it('a chained response lists only its own input, not the turns before it', async () => {
    const first = await client.responses.create({ ...brief, input: 'Name a color.' });
    const second = await client.responses.create({ ...brief, previous_response_id: first.id, input: 'And another?' });
    const items = (await client.responses.inputItems.list(second.id)).data as OpenAI.Responses.ResponseInputMessageItem[];
    expect(items.map((i) => i.content)).toEqual([[{ type: 'input_text', text: 'And another?' }]]);
  });

  it('an unknown id, a response made with store false, and a deleted one: 404 in the envelope GET of a response uses', async () => {
    const unknown = await client.responses.inputItems.list('resp_missing').catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknown as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('response_not_found');
    const unstored = await client.responses.create({ ...brief, input: 'Forget me', store: false });
    const raw = await get(`${s.url}/v1/responses/${unstored.id}/input_items`);
    expect(raw.status).toBe(404);
    expect(raw.json.error).toMatchObject({ type: 'invalid_request_error', code: 'response_not_found' });
    expect(raw.json).toEqual((await get(`${s.url}/v1/responses/${unstored.id}`)).json);

    const kept = await client.responses.create({ ...brief, input: 'Keep me' });
    expect((await client.responses.inputItems.list(kept.id)).data).toHaveLength(1);
    await client.responses.delete(kept.id);
    await expect(client.responses.inputItems.list(kept.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('a bad limit, order, after or include is a 400 naming the parameter and what it takes', async () => {
    const r = await client.responses.create({ ...brief, input: 'hi' });
    const cases: [string, string, RegExp][] = [
      ['limit=0', 'limit', /from 1 to 100/],
      ['limit=101', 'limit', /from 1 to 100/],
      ['limit=2.5', 'limit', /from 1 to 100/],
      ['limit=ten', 'limit', /from 1 to 100/],
      ['limit=', 'limit', /from 1 to 100/],
      ['limit=5&limit=6', 'limit', /once/],
      ['order=newest', 'order', /"asc" or "desc"/],
      ['order=ASC', 'order', /"asc" or "desc"/],
      ['after=msg_nowhere', 'after', /not the id of an input item/],
      ['include[]=file_search_call.results&include[]=everything', 'include', /message\.output_text\.logprobs/],
    ];
    for (const [query, param, message] of cases) {
      const res = await get(`${s.url}/v1/responses/${r.id}/input_items?${query}`);
      expect({ query, status: res.status, param: res.json.error?.param, code: res.json.error?.code }).toEqual({ query, status: 400, param, code: 'invalid_value' });
      expect(res.json.error.message).toMatch(message);
    }
    const viaSdk = await client.responses.inputItems.list(r.id, { order: 'sideways' as 'asc' }).catch((e: unknown) => e);
    expect(viaSdk).toBeInstanceOf(OpenAI.BadRequestError);
    expect((viaSdk as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('order');
  });

  it('the route sits beside GET and DELETE of the response: other methods are 405, other sub-paths 404', async () => {
    const r = await client.responses.create({ ...brief, input: 'hi' });
    const posted = await post(`${s.url}/v1/responses/${r.id}/input_items`, {});
    expect(posted.status).toBe(405);
    expect(posted.headers.allow).toBe('GET');
    const deleted = await request(`${s.url}/v1/responses/${r.id}/input_items`, { method: 'DELETE' });
    expect(deleted.statusCode).toBe(405);
    await deleted.body.dump();
    for (const path of [`/v1/responses/${r.id}/output_items`, '/v1/responses//input_items', `/v1/responses/${r.id}/input_items/more`]) {
      const res = await get(`${s.url}${path}`);
      expect({ path, status: res.status, code: res.json.error.code }).toEqual({ path, status: 404, code: 'unknown_url' });
    }
    // The response itself is still there, and its input items with it.
    expect((await client.responses.retrieve(r.id)).id).toBe(r.id);
    expect((await get(`${s.url}/v1/responses/${r.id}/input_items/`)).status).toBe(200);
  });
});

describe('the response store', () => {
  it('counts input items in its size bound: a response whose input alone is past it is not kept', () => {
    const store = new ResponseStore(8, 1000);
    store.put('resp_small', { json: '{}', conversation: [], inputItems: [{ id: 'msg_1', json: 'x'.repeat(100) }] });
    store.put('resp_big', { json: '{}', conversation: [], inputItems: [{ id: 'msg_2', json: 'x'.repeat(2000) }] });
    expect(store.get('resp_small')).toBeDefined();
    expect(store.get('resp_big')).toBeUndefined();
    // Two that fit one at a time but not together: the older goes.
    store.put('resp_a', { json: '{}', conversation: [], inputItems: [{ id: 'msg_3', json: 'x'.repeat(950) }] });
    expect(store.get('resp_small')).toBeUndefined();
    expect(store.get('resp_a')).toBeDefined();
  });
});
