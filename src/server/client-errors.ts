// Errors node:http meets before a request reaches the router (a client too slow to send its
// request, headers too large, bytes that are not HTTP) answered in OpenAI's envelope, as every
// other error is, instead of node's bare status lines. As node does, an answer is written only
// when the socket's request has no response under way, then the connection is closed.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { headersTooLarge, invalidHttp, requestTimeout, type ApiError } from './errors.js';

export interface ClientErrorTimeouts {
  headersMs: number;
  requestMs: number;
}

export class ClientErrors {
  /** The response of the request each socket is on (keep-alive sockets carry one after another). */
  private readonly responses = new WeakMap<Duplex, ServerResponse>();
  /** Responses of requests the router holds that were answered here (a body too slow: 408). */
  private readonly answered = new WeakMap<ServerResponse, number>();

  constructor(
    private readonly timeouts: ClientErrorTimeouts,
    /** Told each status answered for a request that never reached the router, so /metrics counts it too. */
    private readonly onAnswer: (status: number) => void = () => undefined,
  ) {}

  /** Called for every request, before the router. */
  track(req: IncomingMessage, res: ServerResponse): void {
    this.responses.set(req.socket, res);
  }

  /**
   * The status answered here on behalf of a request the router holds, if one was. The router
   * counts such a request once, under its route, with this status: its own response never went out.
   */
  answeredFor(res: ServerResponse): number | undefined {
    return this.answered.get(res);
  }

  /** The server's 'clientError' listener. */
  readonly handle = (err: NodeJS.ErrnoException, socket: Duplex): void => {
    // A finished response is an earlier request's on a keep-alive connection: the one that failed
    // never reached the router, and is answered and counted here, as on a fresh connection.
    const tracked = this.responses.get(socket);
    const res = tracked && !tracked.writableFinished ? tracked : undefined;
    if (!socket.writable || (res && res.headersSent)) {
      socket.destroy();
      return;
    }
    const answer = this.errorFor(err);
    // A request whose headers arrived is the router's (it was reading the body); it counts it.
    if (res) this.answered.set(res, answer.status);
    else this.onAnswer(answer.status);
    socket.end(rawResponse(answer), () => socket.destroy());
  };

  private errorFor(err: NodeJS.ErrnoException): ApiError {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return requestTimeout(this.timeouts.headersMs, this.timeouts.requestMs);
    if (err.code === 'HPE_HEADER_OVERFLOW') return headersTooLarge();
    return invalidHttp(err.code ?? err.message);
  }
}

function rawResponse(err: ApiError): string {
  const body = JSON.stringify(err.envelope());
  return (
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}\r\n` +
    'content-type: application/json\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    'connection: close\r\n\r\n' +
    body
  );
}
