// The local functions of the tool-calling examples and their OpenAI tool definitions (the
// seed's dummies: the weather is always 59 degrees, Boston's postcode 02138).
import type OpenAI from 'openai';

export function getCurrentWeather(location: string, unit: string): number {
  void location;
  void unit;
  return 59.0;
}

export function getPostcode(location: string): string {
  void location;
  return '02138';
}

export const weatherTool: OpenAI.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather in a given location',
    parameters: {
      type: 'object',
      properties: {
        location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['location'],
    },
  },
};

export const postcodeTool: OpenAI.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_postcode',
    description: 'Get the postcode of a given location',
    parameters: {
      type: 'object',
      properties: { location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' } },
      required: ['location'],
    },
  },
};

/** --tool_choice: auto (the seed's), none, required, or the name of one function. */
export function toolChoiceOf(value: string | boolean | undefined): OpenAI.ChatCompletionToolChoiceOption {
  if (value === undefined || value === 'auto' || value === 'none' || value === 'required') return (value ?? 'auto') as 'auto' | 'none' | 'required';
  return { type: 'function', function: { name: String(value) } };
}

/**
 * Runs one call of the model on the local functions and returns what goes back to the server as
 * the tool message. Arguments the model got wrong are reported back to it, not thrown.
 */
export function runToolCall(call: OpenAI.ChatCompletionMessageToolCall, thought: string | null | undefined): string {
  if (call.type !== 'function') return `unsupported tool call type ${call.type}`;
  const { name } = call.function;
  let args: Record<string, unknown>;
  try {
    args = JSON.parse(call.function.arguments) as Record<string, unknown>;
  } catch {
    console.log(`Server response: call local function(${name}) with arguments that are not JSON: ${call.function.arguments}`);
    return `error: the arguments of ${name} are not valid JSON`;
  }
  const location = String(args.location ?? '');
  if (name === 'get_current_weather') {
    const unit = typeof args.unit === 'string' ? args.unit : 'fahrenheit';
    console.log(`Server response: thought: ${thought ?? ''}, call local function(${name}) with arguments: location=${location}, unit=${unit}`);
    return String(getCurrentWeather(location, unit));
  }
  if (name === 'get_postcode') {
    console.log(`Server response: thought: ${thought ?? ''}, call local function(${name}) with arguments: location=${location}`);
    return getPostcode(location);
  }
  console.log(`Unknown function: ${name}`);
  return `error: there is no function named ${name}`;
}
