// The server side of bench:serve, run as its own process so the load generator's event loop
// never shares time with the server's: loads a model folder, serves it, prints its URL.
//
//   tsx bench/serve-server.ts <model dir> [--threads N] [--max-batch-size N] [--max-seq-len 2048]
// --max-batch-size defaults to an engine's build limit (32 for a checkpoint folder).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ChatTemplate } from '../src/chat/chat-template.js';
import { Tokenizer } from '../src/chat/tokenizer.js';
import { loadEngine } from '../src/engine/index.js';
import { startServer } from '../src/server/index.js';
import { defaultServerOptions } from '../src/server/options.js';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string' },
    'max-batch-size': { type: 'string' },
    'max-seq-len': { type: 'string', default: '2048' },
    'max-num-tokens': { type: 'string', default: '512' },
  },
});
const dir = positionals[0];
if (!dir) throw new Error('usage: tsx bench/serve-server.ts <model dir>');

const engine = await loadEngine(dir, {
  device: 'cpu',
  threads: args.threads ? Number(args.threads) : undefined,
  // An engine's own limit unless asked: above it the load is refused.
  maxBatchSize: args['max-batch-size'] ? Number(args['max-batch-size']) : existsSync(join(dir, 'engine.json')) ? undefined : 32,
  maxSeqLen: Number(args['max-seq-len']),
  maxNumTokens: Number(args['max-num-tokens']),
});
const server = await startServer(
  { engine, tokenizer: Tokenizer.fromDir(dir), template: ChatTemplate.fromDir(dir), log: (l) => process.stderr.write(`${l}\n`) },
  { ...defaultServerOptions, host: '127.0.0.1', port: 0, maxConcurrency: 64, maxQueue: 1024 },
);
process.stdout.write(`${JSON.stringify({ url: server.url, info: engine.info })}\n`);
const stop = async () => {
  await server.close();
  await engine.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
