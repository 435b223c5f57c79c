// The route table: every path the server answers, its method and who may call it.
import type { Route } from '../router.js';
import { chatCompletions } from './chat.js';
import { completions } from './completions.js';
import { embeddings } from './embeddings.js';
import { anthropicEnvelope } from '../anthropic/errors.js';
import { countTokens, createMessage } from './messages.js';
import { ollamaEnvelope } from '../ollama/errors.js';
import { ollamaChat, ollamaGenerate } from './ollama.js';
import { ollamaEmbed, ollamaLegacyEmbed } from './ollama-embed.js';
import { ollamaCopy, ollamaCreate, ollamaDelete, ollamaPs, ollamaPull, ollamaPush, ollamaShow, ollamaTags, ollamaVersion } from './ollama-models.js';
import { rerank, score } from './rerank.js';
import { createResponse, deleteResponse, getResponse, listInputItems } from './responses.js';
import { health, metrics, model, models, ping, serverVersion } from './status.js';
import { detokenize, tokenize } from './tokenize.js';
import { loadLoraAdapter, unloadLoraAdapter } from './lora.js';

/** Anthropic's routes answer in its envelope and name the request id as its SDKs read it. */
const anthropic = { errorEnvelope: anthropicEnvelope, requestIdHeader: 'request-id' } as const;
/** Ollama's routes answer errors as {"error": "message"}, which its clients raise. */
const ollama = { errorEnvelope: ollamaEnvelope } as const;

export const routes: Route[] = [
  { method: 'POST', path: '/v1/chat/completions', guard: 'api', handler: chatCompletions },
  { method: 'POST', path: '/v1/completions', guard: 'api', handler: completions },
  { method: 'POST', path: '/v1/responses', guard: 'api', handler: createResponse },
  { method: 'POST', path: '/v1/embeddings', guard: 'api', handler: embeddings },
  // vLLM's rerank (Jina's and Cohere's shape) and score routes, under each path vLLM serves.
  { method: 'POST', path: '/v1/rerank', guard: 'api', handler: rerank },
  { method: 'POST', path: '/v2/rerank', guard: 'api', handler: rerank },
  { method: 'POST', path: '/rerank', guard: 'api', handler: rerank },
  { method: 'POST', path: '/v1/score', guard: 'api', handler: score },
  { method: 'POST', path: '/score', guard: 'api', handler: score },
  { method: 'GET', path: '/v1/responses/{id}', guard: 'api', handler: getResponse },
  { method: 'DELETE', path: '/v1/responses/{id}', guard: 'api', handler: deleteResponse },
  { method: 'GET', path: '/v1/responses/{id}/input_items', guard: 'api', handler: listInputItems },
  // Anthropic's Messages API: its SDKs read errors in Anthropic's own envelope.
  { method: 'POST', path: '/v1/messages', guard: 'api', handler: createMessage, ...anthropic },
  { method: 'POST', path: '/v1/messages/count_tokens', guard: 'api', handler: countTokens, ...anthropic },
  // Ollama's API, for its clients and the tools built on them.
  { method: 'POST', path: '/api/chat', guard: 'api', handler: ollamaChat, ...ollama },
  { method: 'POST', path: '/api/generate', guard: 'api', handler: ollamaGenerate, ...ollama },
  { method: 'GET', path: '/api/tags', guard: 'api', handler: ollamaTags, ...ollama },
  { method: 'POST', path: '/api/show', guard: 'api', handler: ollamaShow, ...ollama },
  { method: 'GET', path: '/api/ps', guard: 'api', handler: ollamaPs, ...ollama },
  { method: 'GET', path: '/api/version', guard: 'api', handler: ollamaVersion, ...ollama },
  { method: 'POST', path: '/api/pull', guard: 'api', handler: ollamaPull, ...ollama },
  { method: 'POST', path: '/api/push', guard: 'api', handler: ollamaPush, ...ollama },
  { method: 'POST', path: '/api/create', guard: 'api', handler: ollamaCreate, ...ollama },
  { method: 'POST', path: '/api/copy', guard: 'api', handler: ollamaCopy, ...ollama },
  { method: 'DELETE', path: '/api/delete', guard: 'api', handler: ollamaDelete, ...ollama },
  { method: 'POST', path: '/api/embed', guard: 'api', handler: ollamaEmbed, ...ollama },
  { method: 'POST', path: '/api/embeddings', guard: 'api', handler: ollamaLegacyEmbed, ...ollama },
  { method: 'GET', path: '/v1/models', guard: 'api', handler: models },
  { method: 'GET', path: '/v1/models/{model}', guard: 'api', handler: model },
  { method: 'POST', path: '/v1/load_lora_adapter', guard: 'api', handler: loadLoraAdapter },
  { method: 'POST', path: '/v1/unload_lora_adapter', guard: 'api', handler: unloadLoraAdapter },
  { method: 'POST', path: '/tokenize', guard: 'api', handler: tokenize },
  { method: 'POST', path: '/detokenize', guard: 'api', handler: detokenize },
  { method: 'GET', path: '/health', guard: 'health', handler: health },
  { method: 'GET', path: '/ping', guard: 'health', handler: ping },
  { method: 'GET', path: '/version', guard: 'health', handler: serverVersion },
  { method: 'GET', path: '/metrics', guard: 'metrics', handler: metrics },
];
