// POST /v1/embeddings: OpenAI's embeddings on the served model (src/server/embeddings.ts says how
// a vector is taken). The official SDKs ask for base64 by default: little-endian float32 bytes.
import { badRequest } from '../errors.js';
import { checkDimensions, embedInputs, fitInput } from '../embeddings.js';
import { sendJson } from '../http.js';
import { embeddingRequestSchema, type EmbeddingRequest } from '../openai/schema-embeddings.js';
import { checkTokenIds } from '../openai/sampling.js';
import { truncatePrompt } from '../openai/token-rules.js';
import { requestPriority } from '../openai/vllm-fields.js';
import type { RequestContext } from '../router.js';
import { parseBody } from './common.js';

export async function embeddings(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, embeddingRequestSchema);
  const s = rc.server;
  const { engine, name: modelName } = s.engineFor(body.model);
  const priority = requestPriority(body.priority, engine.info.schedulingPolicy);
  const dimensions = checkDimensions(body.dimensions, engine.info.hiddenSize);
  const inputs = (await inputsOf(body, rc)).map((ids, i, all) => {
    const kept = truncatePrompt(ids, body.truncate_prompt_tokens, s.limits);
    return fitInput(kept, s.limits, all.length > 1 ? `input[${i}]` : 'input');
  });
  const vectors = await embedInputs(rc, inputs, { dimensions, normalize: body.normalize ?? true }, priority, engine);
  const base64 = body.encoding_format === 'base64';
  const promptTokens = inputs.reduce((n, ids) => n + ids.length, 0);
  sendJson(rc.res, 200, {
    object: 'list',
    data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v })),
    model: modelName,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}

/**
 * Token ids of each input: text through the tokenizer (with its post-processor's tokens, as HF
 * adds them; long texts off the event loop), ids checked.
 */
async function inputsOf(body: EmbeddingRequest, rc: RequestContext): Promise<number[][]> {
  const tok = rc.server.tokenizer;
  const addSpecial = body.add_special_tokens ?? true;
  const encode = (texts: string[]) => (addSpecial ? rc.server.texts.encodeAllWithSpecialTokens(texts) : rc.server.texts.encodeAll(texts));
  const fromText = (ids: number[], param: string): number[] => {
    if (ids.length === 0) throw badRequest(`${param} is empty; send at least one character of text.`, param);
    return ids;
  };
  const fromIds = (ids: number[], param: string): number[] => {
    checkTokenIds(ids, tok.vocabSize, param);
    return ids;
  };
  const p = body.input;
  if (typeof p === 'string') return [fromText((await encode([p]))[0], 'input')];
  if (typeof p[0] === 'string') return (await encode(p as string[])).map((ids, i) => fromText(ids, `input[${i}]`));
  if (typeof p[0] === 'number') return [fromIds(p as number[], 'input')];
  return (p as number[][]).map((ids, i) => fromIds(ids, `input[${i}]`));
}
