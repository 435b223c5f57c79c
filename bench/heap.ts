// Does the server keep anything per request? Runs the real server in this process on the tiny
// fixture, sends rounds of short chat requests (16 at a time) and prints the JS heap after a
// forced full collection at the end of each round: a leak shows as heapUsed climbing round after
// round (RSS alone cannot tell: V8 keeps freed pages resident until it needs them elsewhere).
//   npm run bench:heap -- [--rounds 6] [--requests 1500]
// Needs --expose-gc, which the npm script passes. The access log is off: the harness keeps every
// log line in memory, which would read as growth.
import { parseArgs } from 'node:util';
import { loadTiny, serve } from '../test/e2e/server-harness.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '6' }, requests: { type: 'string', default: '1500' } } });
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:heap does)');
const model = await loadTiny('tiny-a');
const srv = await serve(model, { accessLog: false });
const body = (i: number) => JSON.stringify({ model: 'qwen3', messages: [{ role: 'user', content: `hello ${i}` }], max_tokens: 4, temperature: 0 });
const mib = (n: number) => (n / 2 ** 20).toFixed(1);
for (let round = 0; round < Number(values.rounds); round++) {
  for (let i = 0; i < Number(values.requests); i += 16) {
    await Promise.all(Array.from({ length: 16 }, (_, j) => fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(i + j) }).then((r) => r.text())));
  }
  gc();
  await new Promise((r) => setTimeout(r, 200));
  gc();
  const m = process.memoryUsage();
  console.log(`round ${round} (${(round + 1) * Number(values.requests)} requests): heapUsed ${mib(m.heapUsed)} MiB, rss ${mib(m.rss)} MiB, external ${mib(m.external)} MiB`);
}
await srv.server.close();
await model.engine.close();
