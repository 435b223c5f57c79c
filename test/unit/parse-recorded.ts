// Model-style outputs of Qwen3 (as the real model writes them) with the answers the parsers must
// give. Shared by the parser tests, which replay each one split at every character boundary.
export interface RecordedOutput {
  name: string;
  text: string;
  /** With thinking on and the reasoning parser on. */
  separated: { reasoning: string; content: string; calls: { name: string; arguments: unknown }[] };
}

const weather = '{"name": "get_current_weather", "arguments": {"location": "Boston, MA", "unit": "fahrenheit"}}';
const postcode = '{"name": "get_postcode", "arguments": {"city": "北京"}}';

export const recorded: RecordedOutput[] = [
  {
    name: 'think then answer',
    text: '<think>\nOkay, the user asks what 2+2 is. That is 4.\n</think>\n\nThe answer is **4**.',
    separated: { reasoning: '\nOkay, the user asks what 2+2 is. That is 4.\n', content: 'The answer is **4**.', calls: [] },
  },
  {
    name: 'think then one call',
    text: `<think>\nThe user wants the weather, so I call the tool.\n</think>\n\n<tool_call>\n${weather}\n</tool_call>`,
    separated: {
      reasoning: '\nThe user wants the weather, so I call the tool.\n',
      content: '',
      calls: [{ name: 'get_current_weather', arguments: { location: 'Boston, MA', unit: 'fahrenheit' } }],
    },
  },
  {
    name: 'two calls in one turn',
    text: `<tool_call>\n${weather}\n</tool_call>\n<tool_call>\n${postcode}\n</tool_call>`,
    separated: {
      reasoning: '',
      content: '',
      calls: [
        { name: 'get_current_weather', arguments: { location: 'Boston, MA', unit: 'fahrenheit' } },
        { name: 'get_postcode', arguments: { city: '北京' } },
      ],
    },
  },
  {
    name: 'text before a call',
    text: `Let me check the weather for you.\n<tool_call>\n${weather}\n</tool_call>`,
    separated: {
      reasoning: '',
      content: 'Let me check the weather for you.',
      calls: [{ name: 'get_current_weather', arguments: { location: 'Boston, MA', unit: 'fahrenheit' } }],
    },
  },
  {
    name: 'invalid JSON stays in content',
    text: '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris"\n</tool_call>',
    separated: {
      reasoning: '',
      content: '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris"\n</tool_call>',
      calls: [],
    },
  },
  {
    name: 'call inside the think block is not a call',
    text: '<think>\nI could write <tool_call>\n{"name": "x", "arguments": {}}\n</tool_call> but no.\n</think>\n\nNo tool is needed.',
    separated: {
      reasoning: '\nI could write <tool_call>\n{"name": "x", "arguments": {}}\n</tool_call> but no.\n',
      content: 'No tool is needed.',
      calls: [],
    },
  },
  {
    name: 'truncated think block',
    text: '<think>\nHmm, this is a long thought that the length limit cut',
    separated: { reasoning: '\nHmm, this is a long thought that the length limit cut', content: '', calls: [] },
  },
  {
    name: 'unicode and emoji',
    text: '<think>\n用户问天气。\n</think>\n\n北京今天晴，气温 25°C 😀。',
    separated: { reasoning: '\n用户问天气。\n', content: '北京今天晴，气温 25°C 😀。', calls: [] },
  },
  {
    name: 'no think block',
    text: 'Just an answer with <thin> and </think> in it.',
    separated: { reasoning: '', content: 'Just an answer with <thin> and </think> in it.', calls: [] },
  },
  {
    name: 'arguments given as a JSON string',
    text: '<tool_call>\n{"name": "get_postcode", "arguments": "{\\"city\\": \\"Paris\\"}"}\n</tool_call>',
    separated: { reasoning: '', content: '', calls: [{ name: 'get_postcode', arguments: { city: 'Paris' } }] },
  },
];

/** Every way to cut `text` into two pieces, then into three, at character (code point) boundaries. */
export function* splits(text: string): Generator<string[]> {
  const chars = Array.from(text);
  const at = (a: number, b: number) => chars.slice(a, b).join('');
  yield [text];
  yield chars;
  for (let i = 1; i < chars.length; i++) yield [at(0, i), at(i, chars.length)];
  const step = Math.max(1, Math.floor(chars.length / 50));
  for (let i = 1; i < chars.length; i += step)
    for (let j = i + 1; j < chars.length; j++) yield [at(0, i), at(i, j), at(j, chars.length)];
}
