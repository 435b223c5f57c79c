// The route table and the one wrapper every request goes through: CORS, auth, the handler, and
// errors turned into OpenAI's envelope. Handlers never write error responses themselves.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiKeyCheck } from './auth.js';
import type { ServerContext } from './context.js';
import { methodNotAllowed, routeNotFound, toApiError, type ApiError } from './errors.js';
import { sendError } from './http.js';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  server: ServerContext;
  /** performance.now() when the request arrived. */
  arrival: number;
  /** Aborted when the client goes away before the response is complete, or the server closes. */
  signal: AbortSignal;
  /** The path segment that matched the route's {parameter}, decoded (a route has at most one). */
  param?: string;
}

export type Handler = (rc: RequestContext) => Promise<void>;

/** Who must present the API key: every /v1 and tokenize route; health and metrics as configured. */
export type Guard = 'api' | 'health' | 'metrics' | 'open';

export interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  /** Exact, or with one "{name}" segment anywhere ("/v1/responses/{id}/input_items") that matches any single non-empty segment. */
  path: string;
  guard: Guard;
  handler: Handler;
  /** The error body this route's clients read, given the response's request id; OpenAI's envelope when left out. */
  errorEnvelope?: (err: ApiError, requestId: string) => unknown;
  /** Anthropic's SDKs read the request id from `request-id` (OpenAI's from `x-request-id`). */
  requestIdHeader?: string;
}

const corsHeaders = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': 'authorization, content-type, x-api-key',
  'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
  'access-control-expose-headers': 'x-request-id',
};

/** A header list a preflight may ask for: tokens and commas only, so it can be echoed back. */
const headerList = /^[A-Za-z0-9!#$%&'*+.^_`|~, -]{1,2048}$/;
/** A client's own request id, echoed back when it is a plain token (as OpenAI's x-request-id). */
const requestIdToken = /^[A-Za-z0-9._:-]{1,128}$/;

/** x-request-id of a response: the client's when it sent a plain one, else a new one. */
function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && requestIdToken.test(given) ? given : `req_${randomBytes(12).toString('hex')}`;
}

/** The routes that share one parameterized path, its segments split once. */
interface PatternRoutes {
  segments: string[];
  /** Where the {parameter} sits among the segments. */
  paramAt: number;
  routes: Route[];
}

export class Router {
  private readonly byPath = new Map<string, Route[]>();
  /** Most specific first: of two patterns a path matches, the one whose parameter comes later. */
  private readonly patterns: PatternRoutes[] = [];
  private readonly key?: ApiKeyCheck;
  /** "METHOD /path" of every API route (the chat page's files left out), for the 404's message. */
  private readonly listed: string[];
  /** First path segment -> the error envelope all its routes share (/api: Ollama's), for 404s under it. */
  private readonly envelopeBySegment = new Map<string, Route['errorEnvelope']>();

  constructor(
    private readonly server: ServerContext,
    routes: Route[],
    /** The status node's client-error handler answered for a response the router never sent (client-errors.ts). */
    private readonly answeredFor: (res: ServerResponse) => number | undefined = () => undefined,
  ) {
    const byPattern = new Map<string, PatternRoutes>();
    for (const r of routes) {
      const segments = r.path.split('/');
      const params = segments.flatMap((seg, i) => (/^\{\w+\}$/.test(seg) ? [i] : []));
      if (params.length > 1) throw new Error(`route ${r.path}: a route has at most one {parameter}`);
      if (params.length === 0) {
        this.byPath.set(r.path, [...(this.byPath.get(r.path) ?? []), r]);
        continue;
      }
      const group = byPattern.get(r.path) ?? { segments, paramAt: params[0], routes: [] };
      group.routes.push(r);
      byPattern.set(r.path, group);
    }
    this.patterns.push(...[...byPattern.values()].sort((a, b) => b.paramAt - a.paramAt));
    this.listed = routes.filter((r) => r.guard !== 'open').map((r) => `${r.method} ${r.path}`);
    // A segment whose routes disagree (/v1 holds OpenAI's and Anthropic's) keeps the default envelope.
    const bySegment = new Map<string, Set<Route['errorEnvelope']>>();
    for (const r of routes) {
      const first = firstSegment(r.path);
      bySegment.set(first, (bySegment.get(first) ?? new Set()).add(r.errorEnvelope));
    }
    for (const [first, envelopes] of bySegment) if (envelopes.size === 1) this.envelopeBySegment.set(first, [...envelopes][0]);
    if (server.options.apiKey) this.key = new ApiKeyCheck(server.options.apiKey);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const arrival = performance.now();
    const path = pathOf(req.url);
    const method = req.method ?? 'GET';
    const ac = new AbortController();
    const untrack = this.server.track(ac);
    const id = requestId(req);
    res.on('close', () => {
      if (!res.writableFinished) ac.abort(new Error('the client disconnected'));
      untrack();
      if (this.server.options.accessLog && !quietPaths.has(path)) this.server.log(accessLine(method, path, this.outcome(res), arrival, id));
    });
    for (const [k, v] of Object.entries(corsHeaders)) res.setHeader(k, v);
    res.setHeader('x-request-id', id);
    let label = 'unknown';
    let errorEnvelope: Route['errorEnvelope'];
    try {
      if (method === 'OPTIONS') {
        // Browser clients (the openai SDK sends its x-stainless-* headers) may send what they ask for.
        const asked = req.headers['access-control-request-headers'];
        if (typeof asked === 'string' && headerList.test(asked)) res.setHeader('access-control-allow-headers', asked);
        res.setHeader('access-control-max-age', '600');
        res.writeHead(204);
        res.end();
        return;
      }
      // An exact route wins over a pattern that would match the same path.
      const exact = this.byPath.get(path);
      const matched = exact ? undefined : this.matchPattern(path);
      const candidates = exact ?? matched?.routes;
      // Errors before a route is found answer in the envelope of the routes around the path.
      errorEnvelope = candidates ? candidates[0].errorEnvelope : this.envelopeBySegment.get(firstSegment(path));
      // So is the request id, under the header those clients read it from.
      if (candidates?.[0].requestIdHeader) res.setHeader(candidates[0].requestIdHeader, id);
      if (!candidates) throw routeNotFound(method, path, this.listed);
      const route = candidates.find((r) => r.method === method || (method === 'HEAD' && r.method === 'GET'));
      if (!route) throw methodNotAllowed(method, path, candidates.map((r) => r.method));
      label = route.path;
      errorEnvelope = route.errorEnvelope;
      if (route.requestIdHeader) res.setHeader(route.requestIdHeader, id);
      this.authorize(route.guard, req);
      await route.handler({ req, res, server: this.server, arrival, signal: ac.signal, param: matched?.param });
    } catch (err) {
      // A client that left (while queued or generating) needs no answer and is no server fault.
      if (ac.signal.aborted && res.destroyed) return;
      const apiErr = toApiError(err);
      if (apiErr.status >= 500 && apiErr.code !== 'cancelled' && apiErr.code !== 'model_not_ready' && apiErr.code !== 'shutting_down')
        this.server.log(`${method} ${path}: ${apiErr.message}`, 'error');
      const envelope = errorEnvelope;
      if (!res.headersSent) sendError(res, apiErr, envelope && ((e) => envelope(e, id)));
      else if (!res.writableEnded) res.end();
    } finally {
      this.server.metrics.requests.inc({ route: label, status: this.outcome(res).status ?? 'disconnected' });
      if (res.writableFinished || res.destroyed) untrack();
    }
  }

  /** The routes of the most specific pattern the path matches, and its parameter's value. */
  private matchPattern(path: string): { routes: Route[]; param: string } | undefined {
    const segments = path.split('/');
    for (const p of this.patterns) {
      if (p.segments.length !== segments.length) continue;
      const fits = segments.every((seg, i) => (i === p.paramAt ? seg !== '' : seg === p.segments[i]));
      if (fits) return { routes: p.routes, param: decodeSegment(segments[p.paramAt]) };
    }
    return undefined;
  }

  /**
   * How a request ended: the status it was answered with (by the route, or by node's client-error
   * handler when its body arrived too slowly: one 408, not also a disconnect), and whether the
   * client left before the answer was complete.
   */
  private outcome(res: ServerResponse): Outcome {
    if (res.headersSent) return { status: String(res.statusCode), left: !res.writableFinished };
    const answered = this.answeredFor(res);
    return answered !== undefined ? { status: String(answered), left: false } : { left: true };
  }

  private authorize(guard: Guard, req: IncomingMessage): void {
    if (!this.key || guard === 'open') return;
    const opts = this.server.options;
    if (guard === 'health' && !opts.authHealth) return;
    if (guard === 'metrics' && !opts.authMetrics) return;
    this.key.verify(req);
  }
}

/** Health probes: answered even past max_connections (src/server/index.ts), so a busy server is not restarted. */
export const probePaths = new Set(['/health', '/ping']);
/** Probes and scrapes come every few seconds: logging them would bury the requests. */
const quietPaths = new Set([...probePaths, '/metrics']);

interface Outcome {
  /** Absent when nothing was answered. */
  status?: string;
  left: boolean;
}

/** `access: POST /v1/chat/completions 200 812 ms req_...` (the path without its query; never a body or a key). */
function accessLine(method: string, path: string, outcome: Outcome, arrival: number, id: string): string {
  const left = outcome.left ? ' (client left)' : '';
  return `access: ${method} ${path} ${outcome.status ?? '-'} ${Math.round(performance.now() - arrival)} ms ${id}${left}`;
}

export function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  const p = q >= 0 ? raw.slice(0, q) : raw;
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // a stray "%": the segment as sent
  }
}

/** "/api/chat" -> "api"; "/" -> "". */
function firstSegment(path: string): string {
  return path.split('/')[1] ?? '';
}
