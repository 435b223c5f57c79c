// The server's entry point: binds the port at once (so /health can say "loading"), serves once
// the engine is there, and drains or closes on request. The daemon and `grpst serve` call this.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { IncrementalDecoder, tokenMask } from '../chat/incremental-decoder.js';
import { renderPromptText } from '../chat/render-prompt.js';
import type { ChatTemplate, ChatTool } from '../chat/chat-template.js';
import { LongTextTokenizer } from '../chat/tokenize-thread.js';
import type { Tokenizer } from '../chat/tokenizer.js';
import { LoadCancelled, type GenerationEngine } from '../engine/types.js';
import { badInput, GrpstError } from '../util/errors.js';
import { ClientErrors } from './client-errors.js';
import { ServerContext, type LogFn, type RenderFn } from './context.js';
import { ApiError, badRequest, tooManyConnections } from './errors.js';
import { sendError } from './http.js';
import type { ConstraintCompiler } from './openai/constraints.js';
import { RequestTemplates } from './openai/request-templates.js';
import { DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, type ServerOptions } from './options.js';
import { pathOf, probePaths, Router, type Route } from './router.js';
import { routes } from './routes/index.js';
import { weightsReadyText } from './weights-ready-text.js';

export type { ServerOptions } from './options.js';
export { defaultServerOptions } from './options.js';
export type { ConstraintCompiler, ConstraintRequest } from './openai/constraints.js';
export type { Route, RequestContext, Handler, Guard } from './router.js';

export interface ServerDeps {
  /** A promise binds the port first: /health answers 503 "loading" until it resolves. */
  engine: GenerationEngine | Promise<GenerationEngine>;
  tokenizer: Tokenizer;
  template: ChatTemplate;
  /** One line per event worth keeping (load failures and 500s as errors, requests, ignored bad_words); never carries the API key. */
  log?: LogFn;
  /** Structured outputs: compiles response_format / forced tool_choice into an engine constraint. */
  constraints?: ConstraintCompiler;
  /** The folder the engine was loaded from (Ollama's /api/tags and /api/show describe its files). */
  modelDir?: string;
  /** More routes served next to the API (the web chat page at GET /), behind the same wrapper. */
  extraRoutes?: Route[];
}

export interface RunningServer {
  port: number;
  url: string;
  /** Resolves when the engine is loaded and requests are served; rejects if loading failed. */
  ready: Promise<void>;
  /** Stop accepting, let in-flight requests finish, then close; after timeoutMs the rest are cancelled. */
  drain(timeoutMs: number): Promise<void>;
  /** Cancel everything in flight and close now. */
  close(): Promise<void>;
}

export async function startServer(deps: ServerDeps, options: ServerOptions): Promise<RunningServer> {
  const log = deps.log ?? (() => undefined);
  const texts = new LongTextTokenizer(deps.tokenizer, { log: (line) => log(line, 'warn') });
  const render = makeRender(deps.template, texts);
  // The conf's skip_special_tokens list (grps_trtllm's form) names the ids skipping leaves out.
  const skipMask = options.skipTokenIds ? tokenMask(deps.tokenizer.vocabSize, options.skipTokenIds) : undefined;
  const decoder = (skipSpecialTokens: boolean) => new IncrementalDecoder(deps.tokenizer, { skipSpecialTokens, skipMask });
  const ctx = new ServerContext(options, deps.tokenizer, texts, render, decoder, log, deps.constraints, {
    template: deps.template.source,
    dir: deps.modelDir,
    requestTemplates: options.trustRequestChatTemplate ? new RequestTemplates(deps.template) : undefined,
  });
  // The conf's LoRA adapters load with the engine: one that cannot be served fails the load (the
  // engine closed again), so a server never runs without an adapter its conf names.
  const withAdapters = Promise.resolve(deps.engine).then(async (engine) => {
    try {
      await ctx.loadLoraModules(engine);
    } catch (e) {
      await engine.close().catch(() => undefined);
      throw e;
    }
    return engine;
  });
  const ready = withAdapters.then(
    (engine) => {
      ctx.setEngine(engine);
      const weights = engine.info.weights;
      if (weights?.lockWarning) log(weights.lockWarning, 'warn');
      log(`model ${options.modelId} ready (${engine.info.device}, ${engine.info.kernels}, max_seq_len ${ctx.limits.maxSeqLen}, max_batch_size ${engine.info.maxBatchSize}, max_num_tokens ${engine.info.maxNumTokens}, kv_cache_dtype ${engine.info.kvCacheDtype}${weights ? `, ${weightsReadyText(weights)}` : ''})`);
      if (ctx.limits.maxSeqLen < engine.info.maxSeqLen)
        log(
          `the KV cache holds ${ctx.limits.maxSeqLen} tokens, fewer than the engine's max_seq_len ${engine.info.maxSeqLen}: requests are limited to ${ctx.limits.maxSeqLen} tokens; raise max_tokens_in_paged_kv_cache, kv_cache_bytes or kv_cache_free_gpu_mem_fraction in the inference conf to serve longer ones`,
        );
    },
    (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      ctx.setFailed(message);
      // A load cancelled by a stop is no failure.
      if (err instanceof LoadCancelled) log(message);
      // The fix a load error carries goes into the log line too: serve's log is all a daemon's user sees.
      else log(`the engine could not be loaded: ${message}${err instanceof GrpstError && err.hint ? ` (fix: ${err.hint})` : ''}`, 'error');
      throw err;
    },
  );
  // Handlers go on at once so a rejected load is never unhandled; callers need not await
  // `ready`: a failed load shows in /health and the log.
  ready.catch(() => undefined);
  // Only receiving a request is timed: an answer (a long stream) may take as long as it needs.
  const requestMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const headersDefault = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const headersMs = requestMs > 0 ? Math.min(headersDefault, requestMs) : headersDefault;
  const clientErrors = new ClientErrors({ headersMs, requestMs }, (status) => ctx.metrics.requests.inc({ route: 'client_error', status: String(status) }));
  const router = new Router(ctx, [...routes, ...(deps.extraRoutes ?? [])], (res) => clientErrors.answeredFor(res));
  const server = createServer(
    {
      keepAliveTimeout: 65_000,
      requestTimeout: requestMs,
      headersTimeout: headersMs,
      // How often node looks for requests past their time: often enough that short timeouts hold.
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersMs / 4))),
    },
    (req, res) => {
      clientErrors.track(req, res);
      // Past max_connections the request is answered, not dropped: a 503 a client can retry
      // (and the health probes their usual answer, so they are never starved), then the
      // connection closes.
      if (overLimit.has(req.socket)) {
        res.setHeader('connection', 'close');
        if (!probePaths.has(pathOf(req.url))) {
          ctx.metrics.requests.inc({ route: 'connection_limit', status: '503' });
          sendError(res, tooManyConnections(options.maxConnections));
          return;
        }
      }
      void router.handle(req, res);
    },
  );
  // Node's own maxConnections drops sockets without a word (a reset the client cannot tell from a
  // crash); counted here instead, connections past the limit get an answer and are closed.
  const overLimit = new WeakSet<Socket>();
  let open = 0;
  let lastRefusalLog = 0;
  server.on('connection', (socket: Socket) => {
    open++;
    socket.once('close', () => open--);
    if (open <= options.maxConnections) return;
    overLimit.add(socket);
    ctx.metrics.connectionsRefused.inc();
    socket.setTimeout(10_000, () => socket.destroy()); // one that sends nothing is not kept
    if (Date.now() - lastRefusalLog > 60_000) {
      lastRefusalLog = Date.now();
      log(`connections past max_connections (${options.maxConnections}) are answered 503; raise max_connections in server.yml if clients keep that many open`);
    }
  });
  server.on('clientError', clientErrors.handle);

  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => reject(listenError(err, options));
    server.once('error', fail);
    server.listen(options.port, options.host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;


  let closing: Promise<void> | undefined;
  const shutdown = (timeoutMs: number) =>
    (closing ??= (async () => {
      if (ctx.state !== 'closed') ctx.state = 'draining';
      const stopped = closeServer(server);
      await waitIdle(ctx, timeoutMs);
      if (ctx.inflight.size > 0) {
        for (const ac of ctx.inflight) ac.abort(new Error('the server is shutting down'));
        // Cancelled requests still answer: an envelope, or an error frame and [DONE] mid-stream.
        await waitIdle(ctx, 2_000);
      }
      server.closeAllConnections();
      await stopped;
      await deps.constraints?.close?.();
      await texts.close();
      ctx.state = 'closed';
    })());

  return {
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ready,
    drain: (timeoutMs) => shutdown(timeoutMs),
    // Also during a drain (a second Ctrl-C): what is in flight is cancelled now, and the drain
    // under way, waiting for those requests, ends with them.
    close: () => {
      for (const ac of ctx.inflight) ac.abort(new Error('the server is shutting down'));
      return shutdown(0);
    },
  };
}

function makeRender(template: ChatTemplate, texts: LongTextTokenizer): RenderFn {
  return async (messages, opts) => {
    let p: ReturnType<typeof renderPromptText>;
    try {
      // continue_final_message: the render ends right after the last message's content, as
      // transformers cuts it, with user text still shielded.
      p = renderPromptText(opts.template ?? template, texts.tokenizer, messages, {
        addGenerationPrompt: opts.addGenerationPrompt,
        continueFinalMessage: opts.continueFinalMessage,
        enableThinking: opts.enableThinking,
        tools: opts.tools as ChatTool[] | undefined,
        kwargs: opts.kwargs,
      });
    } catch (err) {
      // A request's own template that fails is the request's to fix, whatever failed in it.
      if (opts.template && !(err instanceof ApiError)) throw badRequest(`chat_template failed to render these messages: ${(err as Error).message}`, 'chat_template');
      // The template rejects what the messages ask of it: that is the client's request to fix.
      if (err instanceof GrpstError) throw badRequest(err.hint ? `${err.message}; ${err.hint}` : err.message, 'messages');
      if (err instanceof RangeError) throw badRequest(`The messages or tools are too deeply nested to render (${err.message}); flatten them.`, 'messages', 'invalid_value');
      throw err;
    }
    return { text: p.text, ids: await texts.encode(p.text, { noSpecialIn: p.shielded }) };
  };
}

function listenError(err: NodeJS.ErrnoException, options: ServerOptions): Error {
  const where = `${options.host}:${options.port}`;
  if (err.code === 'EADDRINUSE') return badInput(`port ${where} is already in use`, 'stop the process that holds it (grpst ps) or pick another port: port in server.yml, or --port with grpst serve');
  if (err.code === 'EACCES') return badInput(`not allowed to listen on ${where}`, 'use a port above 1023 or run with the rights to bind it');
  if (err.code === 'EADDRNOTAVAIL') return badInput(`${options.host} is not an address of this machine`, 'set host to 0.0.0.0, 127.0.0.1 or one of its addresses');
  return err;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Idle keep-alive sockets would hold close() open; busy ones finish their request first.
    server.closeIdleConnections();
  });
}

async function waitIdle(ctx: ServerContext, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (ctx.inflight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}
