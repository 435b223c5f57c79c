// The route table: every path the server answers, its method and who may call it.
import type { Route } from '../router.js';
import { chatCompletions } from './chat.js';
import { completions } from './completions.js';
import { anthropicEnvelope } from '../anthropic/errors.js';
import { countTokens, createMessage } from './messages.js';
import { createResponse, deleteResponse, getResponse, listInputItems } from './responses.js';
import { health, metrics, model, models, ping } from './status.js';
import { detokenize, tokenize } from './tokenize.js';

/** Anthropic's routes answer in its envelope and name the request id as its SDKs read it. */
const anthropic = { errorEnvelope: anthropicEnvelope, requestIdHeader: 'request-id' } as const;

export const routes: Route[] = [
  { method: 'POST', path: '/v1/chat/completions', guard: 'api', handler: chatCompletions },
  { method: 'POST', path: '/v1/completions', guard: 'api', handler: completions },
  { method: 'POST', path: '/v1/responses', guard: 'api', handler: createResponse },
  { method: 'GET', path: '/v1/responses/{id}', guard: 'api', handler: getResponse },
  { method: 'DELETE', path: '/v1/responses/{id}', guard: 'api', handler: deleteResponse },
  { method: 'GET', path: '/v1/responses/{id}/input_items', guard: 'api', handler: listInputItems },
  // Anthropic's Messages API: its SDKs read errors in Anthropic's own envelope.
  { method: 'POST', path: '/v1/messages', guard: 'api', handler: createMessage, ...anthropic },
  { method: 'POST', path: '/v1/messages/count_tokens', guard: 'api', handler: countTokens, ...anthropic },
  { method: 'GET', path: '/v1/models', guard: 'api', handler: models },
  { method: 'GET', path: '/v1/models/{model}', guard: 'api', handler: model },
  { method: 'POST', path: '/tokenize', guard: 'api', handler: tokenize },
  { method: 'POST', path: '/detokenize', guard: 'api', handler: detokenize },
  { method: 'GET', path: '/health', guard: 'health', handler: health },
  { method: 'GET', path: '/ping', guard: 'health', handler: ping },
  { method: 'GET', path: '/metrics', guard: 'metrics', handler: metrics },
];
