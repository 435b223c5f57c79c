// Two tools in one turn, as grps_trtllm's client/openai_func_call2.py: the model asks for
// get_postcode and get_current_weather together; this process runs every call and sends all
// results back in one request.
//   npx tsx client/openai_func_call2.ts 127.0.0.1:9997 [--tool_choice auto|required]
import type OpenAI from 'openai';
import { connect, fail, parseExampleArgs, positiveInt, run } from './common.js';
import { postcodeTool, runToolCall, toolChoiceOf, weatherTool } from './tools.js';

const usage = `Usage: npx tsx client/openai_func_call2.ts <server HOST:PORT>
  [--tool_choice auto|none|required|NAME (auto)] [--max_tokens N (1024)] [--seed N] [--api_key KEY] [--model NAME]`;
const { server, args } = parseExampleArgs(usage, [], { tool_choice: { type: 'string' }, max_tokens: { type: 'string' }, seed: { type: 'string' } });
const question = "What's the postcode of Boston and what's the weather like in Boston today?";

run(async () => {
  const { client, model } = await connect(server, args);
  const tools = [weatherTool, postcodeTool];
  const maxTokens = positiveInt(args.options.max_tokens, 'max_tokens', 1024);
  const seed = args.options.seed === undefined ? undefined : positiveInt(args.options.seed, 'seed', 0);
  console.log(`Query server with question: ${question} ...`);
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: question }];
  const first = await client.chat.completions.create({ model, messages, tools, tool_choice: toolChoiceOf(args.options.tool_choice), max_tokens: maxTokens, temperature: 0.7, seed });
  const message = first.choices[0].message;
  const calls = message.tool_calls ?? [];
  if (calls.length === 0) fail(`The model answered without calling a tool (finish_reason ${first.choices[0].finish_reason}): ${JSON.stringify(message.content ?? '')}`);
  console.log(`The model called ${calls.length} tool${calls.length === 1 ? '' : 's'}: ${calls.map((c) => (c.type === 'function' ? c.function.name : c.type)).join(', ')}`);

  messages.push({ role: 'assistant', content: message.content, tool_calls: calls });
  for (const call of calls) messages.push({ role: 'tool', tool_call_id: call.id, content: runToolCall(call, message.content) });
  console.log('Send the result back to the server with function result ...');
  const final = await client.chat.completions.create({ model, messages, tools, tool_choice: 'auto', max_tokens: maxTokens, temperature: 0.7, seed });
  console.log(`Final server response: ${final.choices[0].message.content}`);
}, server);
