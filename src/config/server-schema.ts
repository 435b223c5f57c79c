// server.yml, in the seed's structure (interface, max_connections, max_concurrency, gpu, log)
// plus what grpst adds: a queue bound, an API key, auth for /health and /metrics, the web UI.
import { z } from 'zod';

const int = (min = 0) => z.number().int().min(min);
const port = int(0).max(65535);
const portWords = 'expected a port from 0 to 65535 (0: any free one), or the HTTP and RPC ports as "9997,9998"';
// The seed's "http_port,rpc_port" string; each port in range, so a bad one is named here with its line.
const portPair = z
  .string()
  .refine((text) => /^\s*\d+\s*(,\s*\d+\s*)?$/.test(text) && text.split(',').every((p) => Number(p) <= 65535), { error: portWords });

export const serverConfSchema = z.strictObject({
  interface: z
    .strictObject({
      framework: z.enum(['http', 'http+grpc', 'http+brpc']).optional(),
      host: z.string().min(1).optional(),
      /** 9997, or "9997,9998" (HTTP and RPC ports) as the seed writes it for http+grpc. */
      port: z.union([port, portPair], { error: portWords }).optional(),
      /** The seed's switch for serving /v1/chat/completions with its own body; always on here. */
      customized_predict_http: z.unknown().optional(),
    })
    .optional(),
  max_connections: int(1).optional(),
  max_concurrency: int(1).optional(),
  /** Requests that may wait for a slot beyond max_concurrency; more get 429. */
  max_queue: int(0).optional(),
  max_body_bytes: int(1024).optional(),
  /** Seconds a client may take to send a whole request (not to read the answer); slower ones get 408. */
  request_timeout_s: z.number().positive().optional(),
  gpu: z
    .strictObject({
      devices: z.array(int()).optional(),
      mem_manager_type: z.enum(['torch', 'tensorflow', 'none']).optional(),
      mem_limit_mib: z.number().int().optional(),
      mem_gc_enable: z.boolean().optional(),
      mem_gc_interval: int(1).optional(),
    })
    .optional(),
  log: z
    .strictObject({
      log_dir: z.string().min(1).optional(),
      log_backup_count: int(1).max(3650).optional(),
      /** One line per answered request (method, path, status, time, x-request-id); /health and /metrics left out. */
      access_log: z.boolean().optional(),
    })
    .optional(),
  /** Bearer key for /v1/* and /tokenize; prefer api_key_file or GRPST_API_KEY over a key in the file. */
  api_key: z.string().min(8, 'an API key has at least 8 characters').optional(),
  api_key_file: z.string().min(1).optional(),
  /** With an API key: whether /health and /metrics demand it too. */
  auth: z.strictObject({ health: z.boolean().optional(), metrics: z.boolean().optional() }).optional(),
  web_ui: z.boolean().optional(),
});

export type ServerConf = z.output<typeof serverConfSchema>;
