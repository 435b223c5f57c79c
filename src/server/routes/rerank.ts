// POST /v1/rerank (also /rerank and /v2/rerank, as vLLM serves it) and POST /v1/score (and
// /score): relevance of documents to a query, scored as src/server/rerank.ts says.
import type { Tokenizer } from '../../chat/tokenizer.js';
import { badRequest } from '../errors.js';
import { sendJson } from '../http.js';
import { rerankRequestSchema, scoreRequestSchema, type RerankRequest } from '../openai/schema-rerank.js';
import { truncationLength } from '../openai/token-rules.js';
import { requestPriority } from '../openai/vllm-fields.js';
import { DEFAULT_RERANK_INSTRUCTION, RerankPrompter, relevanceScores } from '../rerank.js';
import type { RequestContext } from '../router.js';
import { parseBody, unixNow } from './common.js';

const prompters = new WeakMap<Tokenizer, RerankPrompter>();
function prompterFor(tok: Tokenizer): RerankPrompter {
  let p = prompters.get(tok);
  if (!p) prompters.set(tok, (p = new RerankPrompter(tok)));
  return p;
}

interface Scoring {
  /** The prompts of the pairs ([query, document]); `param(i)` names pair i's document in a 400. Long texts are tokenized off the event loop. */
  prompts(pairs: Array<[string, string]>, param: (i: number) => string): Promise<number[][]>;
  scores(prompts: number[][]): Promise<number[]>;
}

/** What both routes check and share: the model, the priority, the instruction and the truncation. */
function scoring(rc: RequestContext, body: Pick<RerankRequest, 'model' | 'priority' | 'instruction' | 'truncate_prompt_tokens'>): Scoring {
  const s = rc.server;
  s.checkBaseModel(body.model, 'Scoring and reranking');
  const engine = s.requireGenerator();
  const priority = requestPriority(body.priority, engine.info.schedulingPolicy);
  const prompter = prompterFor(s.tokenizer);
  const keep = truncationLength(body.truncate_prompt_tokens, s.limits);
  const instruction = body.instruction ?? DEFAULT_RERANK_INSTRUCTION;
  return {
    prompts: async (pairs, param) => {
      const texts = pairs.map(([query, document]) => prompter.pairText(query, document, instruction));
      const ids = await s.texts.encodeAll(
        texts.map((t) => t.text),
        texts.map((t) => t.opts),
      );
      return texts.map((t, i) => prompter.prompt(t, ids[i], s.limits, param(i), keep));
    },
    scores: (prompts) => relevanceScores(rc, prompts, prompter.answerIds, priority),
  };
}

export async function rerank(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, rerankRequestSchema);
  const s = rc.server;
  const run = scoring(rc, body);
  const texts = body.documents.map((d) => (typeof d === 'string' ? d : d.text));
  const prompts = await run.prompts(
    texts.map((doc) => [body.query, doc]),
    (i) => `documents[${i}]`,
  );
  const scores = await run.scores(prompts);
  // Best first; equal scores keep the documents' order.
  const order = scores.map((score, index) => ({ index, score })).sort((a, b) => b.score - a.score || a.index - b.index);
  const kept = body.top_n ? order.slice(0, body.top_n) : order;
  const withDocuments = body.return_documents ?? true;
  sendJson(rc.res, 200, {
    id: s.newId('rerank'),
    model: s.options.modelId,
    usage: { total_tokens: prompts.reduce((n, p) => n + p.length, 0) },
    results: kept.map(({ index, score }) => ({ index, ...(withDocuments ? { document: { text: texts[index] } } : {}), relevance_score: score })),
  });
}

export async function score(rc: RequestContext): Promise<void> {
  const body = await parseBody(rc, scoreRequestSchema);
  const s = rc.server;
  const run = scoring(rc, body);
  const queries = typeof body.text_1 === 'string' ? [body.text_1] : body.text_1;
  const documents = typeof body.text_2 === 'string' ? [body.text_2] : body.text_2;
  // One query against every document, or the lists paired in order (vLLM's rule).
  if (queries.length !== 1 && queries.length !== documents.length)
    throw badRequest(`text_1 has ${queries.length} texts and text_2 ${documents.length}: send one text_1 for all of text_2, or as many as text_2 has.`, 'text_1');
  const prompts = await run.prompts(
    documents.map((doc, i) => [queries.length === 1 ? queries[0] : queries[i], doc]),
    (i) => `text_2[${i}]`,
  );
  const scores = await run.scores(prompts);
  const tokens = prompts.reduce((n, p) => n + p.length, 0);
  sendJson(rc.res, 200, {
    id: s.newId('score'),
    object: 'list',
    created: unixNow(),
    model: s.options.modelId,
    data: scores.map((value, index) => ({ index, object: 'score', score: value })),
    usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0 },
  });
}
