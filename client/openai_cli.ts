// Chat completion from the command line, as grps_trtllm's client/openai_cli.py:
//   npx tsx client/openai_cli.ts 127.0.0.1:9997 "Hello, who are you?" false
// Prints the response (or every stream chunk), then latency, token counts and speed.
import { connect, parseExampleArgs, positiveInt, printStats, run, truthy } from './common.js';

const usage = `Usage: npx tsx client/openai_cli.ts <server HOST:PORT> <prompt> <stream true|false>
  [--max_tokens N (1024)] [--enable_thinking true|false] [--api_key KEY] [--model NAME]`;
const { server, args } = parseExampleArgs(usage, ['prompt', 'stream'], { max_tokens: { type: 'string' }, enable_thinking: { type: 'string' } });
const [prompt, streamArg] = args.positionals;

run(async () => {
  const { client, model } = await connect(server, args);
  const thinking = args.options.enable_thinking === undefined ? {} : { enable_thinking: truthy(String(args.options.enable_thinking)) };
  const request = {
    model,
    messages: [{ role: 'user' as const, content: prompt }],
    top_p: 0.3,
    max_tokens: positiveInt(args.options.max_tokens, 'max_tokens', 1024),
    temperature: 0.1,
    ...thinking,
  };
  const begin = performance.now();
  if (truthy(streamArg)) {
    const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    let usage;
    for await (const chunk of stream) {
      console.log(JSON.stringify(chunk));
      usage = chunk.usage ?? usage;
    }
    printStats(begin, usage);
  } else {
    const res = await client.chat.completions.create({ ...request, stream: false });
    console.log(JSON.stringify(res, null, 2));
    printStats(begin, res.usage);
  }
}, server);
