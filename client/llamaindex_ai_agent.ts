// An agent on LlamaIndex.TS with one weather tool, as grps_trtllm's client/llamaindex_ai_agent.py:
// the agent asks the model, runs the tool the model calls, and answers with its result.
//   npx tsx client/llamaindex_ai_agent.ts 127.0.0.1:9997 [--tool_choice auto|required]
// --tool_choice applies to the agent's first step only: forcing every step would never let the
// model answer after the tool result.
import { OpenAI } from '@llamaindex/openai';
import { agent, agentToolCallEvent, agentToolCallResultEvent, stopAgentEvent } from '@llamaindex/workflow';
import { tool } from 'llamaindex';
import { z } from 'zod';
import { connect, parseExampleArgs, positiveInt, run } from './common.js';
import { getCurrentWeather, toolChoiceOf } from './tools.js';

const usage = `Usage: npx tsx client/llamaindex_ai_agent.ts <server HOST:PORT>
  [--tool_choice auto|required (auto)] [--max_tokens N (1024)] [--seed N] [--api_key KEY] [--model NAME]`;
const { server, args } = parseExampleArgs(usage, [], { tool_choice: { type: 'string' }, max_tokens: { type: 'string' }, seed: { type: 'string' } });
const question = 'What is the weather in Boston today?';

const getWeather = tool({
  name: 'get_weather',
  description: 'Get the current weather in a given location',
  parameters: z.object({
    location: z.string().describe('The city and state, e.g. San Francisco, CA'),
    unit: z.string().describe('unit, e.g. celsius, fahrenheit').optional(),
  }),
  execute: ({ location, unit }) => getCurrentWeather(location, unit ?? 'fahrenheit'),
});

run(async () => {
  // The model id and key are found as for the other examples; LlamaIndex then talks to the same /v1.
  const { client, model } = await connect(server, args);
  const llm = new OpenAI({
    model,
    apiKey: client.apiKey ?? undefined,
    baseURL: `http://${server}/v1`,
    temperature: 0.7,
    maxTokens: positiveInt(args.options.max_tokens, 'max_tokens', 1024),
    maxRetries: 0,
    timeout: 600_000,
    additionalChatOptions: args.options.seed === undefined ? undefined : { seed: positiveInt(args.options.seed, 'seed', 0) },
  });
  const firstStepChoice = args.options.tool_choice;
  if (firstStepChoice !== undefined && firstStepChoice !== 'auto') {
    type ChatParams = Parameters<OpenAI['chat']>[0];
    const chat = llm.chat.bind(llm) as (params: ChatParams) => ReturnType<OpenAI['chat']>;
    const toolChoice = toolChoiceOf(firstStepChoice) as NonNullable<ChatParams['additionalChatOptions']>['tool_choice'];
    llm.chat = ((params: ChatParams) => {
      const afterTool = params.messages.some((m) => m.options !== undefined && 'toolResult' in m.options);
      return chat(afterTool ? params : { ...params, additionalChatOptions: { ...params.additionalChatOptions, tool_choice: toolChoice } });
    }) as unknown as OpenAI['chat'];
  }

  const weatherAgent = agent({ llm, tools: [getWeather], timeout: 600 });
  console.log(`Query: ${question}`);
  for await (const event of weatherAgent.runStream(question)) {
    if (agentToolCallEvent.include(event)) console.log(`Calling tool ${event.data.toolName} with ${JSON.stringify(event.data.toolKwargs)}`);
    else if (agentToolCallResultEvent.include(event)) console.log(`Tool ${event.data.toolName} returned ${String(event.data.toolOutput.result)}`);
    else if (stopAgentEvent.include(event)) console.log(`Response: ${event.data.result}`);
  }
}, server);
