// A long text plus a question in one prompt, as grps_trtllm's client/openai_txt_cli.py (its 32k
// novel test). client/data/opticks_32k.txt is about 30,000 tokens:
//   npx tsx client/openai_txt_cli.ts 127.0.0.1:9997 client/data/opticks_32k.txt "What is this text about?" false
// Shows prompt_tokens, so one sees how long the prompt really was.
import { readFileSync } from 'node:fs';
import { connect, fail, parseExampleArgs, positiveInt, printStats, run, truthy } from './common.js';

const usage = `Usage: npx tsx client/openai_txt_cli.ts <server HOST:PORT> <txt-path> <append_prompt> <stream true|false>
  [--max_tokens N (1024)] [--enable_thinking true|false] [--api_key KEY] [--model NAME]`;
const { server, args } = parseExampleArgs(usage, ['txt-path', 'append_prompt', 'stream'], { max_tokens: { type: 'string' }, enable_thinking: { type: 'string' } });
const [txtPath, question, streamArg] = args.positionals;

let text: string;
try {
  text = readFileSync(txtPath, 'utf8');
} catch (err) {
  fail(`cannot read ${txtPath}: ${(err as Error).message}`);
}

run(async () => {
  const { client, model } = await connect(server, args);
  const thinking = args.options.enable_thinking === undefined ? {} : { enable_thinking: truthy(String(args.options.enable_thinking)) };
  const request = {
    model,
    messages: [{ role: 'user' as const, content: text + question }],
    top_p: 0.3,
    max_tokens: positiveInt(args.options.max_tokens, 'max_tokens', 1024),
    temperature: 0.1,
    ...thinking,
  };
  console.log(`Text: ${txtPath} (${text.length} characters), question: ${question}`);
  const begin = performance.now();
  if (truthy(streamArg)) {
    const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    let usage;
    let answer = '';
    for await (const chunk of stream) {
      answer += chunk.choices[0]?.delta?.content ?? '';
      usage = chunk.usage ?? usage;
    }
    console.log(`Answer: ${answer}`);
    console.log(`prompt_tokens: ${usage?.prompt_tokens ?? 'not reported'}`);
    printStats(begin, usage);
  } else {
    const res = await client.chat.completions.create({ ...request, stream: false });
    console.log(`Answer: ${res.choices[0]?.message.content ?? ''}`);
    console.log(`finish_reason: ${res.choices[0]?.finish_reason}`);
    console.log(`prompt_tokens: ${res.usage?.prompt_tokens ?? 'not reported'}`);
    printStats(begin, res.usage);
  }
}, server);
