// Ollama's /api/embed (normalized vectors, one per input) and its older /api/embeddings (one
// prompt, the vector as the model gives it), on src/server/embeddings.ts. An empty input loads
// the model, as Ollama's does: it is loaded while the server runs, so the answer is empty.
import { checkDimensions, embedInputs, fitInput, MAX_EMBEDDING_INPUTS } from '../embeddings.js';
import { badRequest } from '../errors.js';
import { sendJson } from '../http.js';
import { checkOllamaModel } from '../ollama/models.js';
import { ns } from '../ollama/output.js';
import { embedRequestSchema, legacyEmbedRequestSchema } from '../ollama/schema.js';
import type { RequestContext } from '../router.js';
import { parseBody } from './common.js';

export async function ollamaEmbed(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, embedRequestSchema);
  const s = rc.server;
  checkOllamaModel(s, body.model);
  const engine = s.requireEngine();
  const dimensions = checkDimensions(body.dimensions, engine.info.hiddenSize);
  const texts = body.input == null ? [] : typeof body.input === 'string' ? (body.input === '' ? [] : [body.input]) : body.input;
  if (texts.length > MAX_EMBEDDING_INPUTS) throw badRequest(`${texts.length} inputs in one request; at most ${MAX_EMBEDDING_INPUTS} are accepted. Split them over several requests.`, 'input');
  const inputs = (await s.texts.encodeAllWithSpecialTokens(texts)).map((ids, i) => {
    const param = typeof body.input === 'string' ? 'input' : `input[${i}]`;
    if (ids.length === 0) throw badRequest(`${param} is empty; send at least one character of text.`, param);
    // Ollama cuts an input past the context unless truncate is false, which makes it an error.
    return fitInput(ids, s.limits, param, body.truncate ?? true);
  });
  const vectors = inputs.length > 0 ? await embedInputs(rc, inputs, { dimensions, normalize: true }) : [];
  sendJson(rc.res, 200, {
    model: body.model,
    embeddings: vectors,
    total_duration: ns(performance.now() - rc.arrival),
    load_duration: 0,
    prompt_eval_count: inputs.reduce((n, ids) => n + ids.length, 0),
  });
}

export async function ollamaLegacyEmbed(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, legacyEmbedRequestSchema);
  const s = rc.server;
  checkOllamaModel(s, body.model);
  s.requireEngine();
  const text = body.prompt ?? '';
  if (text === '') return sendJson(rc.res, 200, { embedding: [] });
  const [encoded] = await s.texts.encodeAllWithSpecialTokens([text]);
  const ids = fitInput(encoded, s.limits, 'prompt', true);
  const [vector] = await embedInputs(rc, [ids], { normalize: false });
  sendJson(rc.res, 200, { embedding: vector });
}
