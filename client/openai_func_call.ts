// One tool, as grps_trtllm's client/openai_func_call.py: the model asks for get_current_weather,
// this process runs it and sends the result back for the final answer.
//   npx tsx client/openai_func_call.ts 127.0.0.1:9997 [--tool_choice auto|required|get_current_weather]
import type OpenAI from 'openai';
import { connect, fail, parseExampleArgs, positiveInt, run } from './common.js';
import { runToolCall, toolChoiceOf, weatherTool } from './tools.js';

const usage = `Usage: npx tsx client/openai_func_call.ts <server HOST:PORT>
  [--tool_choice auto|none|required|NAME (auto)] [--max_tokens N (1024)] [--seed N] [--api_key KEY] [--model NAME]`;
const { server, args } = parseExampleArgs(usage, [], { tool_choice: { type: 'string' }, max_tokens: { type: 'string' }, seed: { type: 'string' } });
const question = "What's the weather like in Boston today?";

run(async () => {
  const { client, model } = await connect(server, args);
  const tools = [weatherTool];
  const maxTokens = positiveInt(args.options.max_tokens, 'max_tokens', 1024);
  const seed = args.options.seed === undefined ? undefined : positiveInt(args.options.seed, 'seed', 0);
  console.log(`Query server with question: ${question} ...`);
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: question }];
  const first = await client.chat.completions.create({ model, messages, tools, tool_choice: toolChoiceOf(args.options.tool_choice), max_tokens: maxTokens, temperature: 0.7, seed });
  const message = first.choices[0].message;
  const call = message.tool_calls?.[0];
  if (!call) fail(`The model answered without calling get_current_weather (finish_reason ${first.choices[0].finish_reason}): ${JSON.stringify(message.content ?? '')}`);

  const result = runToolCall(call, message.content);
  console.log(`Send the result back to the server with function result(${result}) ...`);
  messages.push({ role: 'assistant', content: message.content, tool_calls: message.tool_calls }, { role: 'tool', tool_call_id: call.id, content: result });
  const final = await client.chat.completions.create({ model, messages, tools, tool_choice: 'auto', max_tokens: maxTokens, temperature: 0.7, seed });
  console.log(`Final server response: ${final.choices[0].message.content}`);
}, server);
