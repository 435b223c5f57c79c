// Every conf error is in words: a wrong value of any kind, for keys of every shape in both
// schemas (numbers with bounds, text, lists, unions, patterns), gets a message that names the
// file, line and key and says what the key takes, never zod's own text ("Invalid string: must
// match pattern /.../", "Invalid input", "Too small: expected string to have >=1 characters").
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { inferenceConfSchema } from '../../src/config/inference-schema.js';
import { serverConfSchema } from '../../src/config/server-schema.js';
import { validateConf } from '../../src/config/validate.js';
import { parseYamlText } from '../../src/config/yaml-file.js';
import { GrpstError } from '../../src/util/errors.js';

function messageOf(schema: z.ZodType, yaml: string, what: string): string {
  try {
    validateConf(schema, parseYamlText(yaml, 'c.yml'), what);
  } catch (err) {
    expect(err).toBeInstanceOf(GrpstError);
    return (err as GrpstError).message;
  }
  throw new Error(`accepted: ${yaml}`);
}

const server = (yaml: string) => messageOf(serverConfSchema, yaml, 'server conf');
/** An inference conf with these extra lines under inferer_args (line 8 on), or the model's `version` replaced. */
const inference = (args: string, version = '1') =>
  messageOf(inferenceConfSchema, `models:\n  - name: m\n    version: ${version}\n    inferer_args:\n      llm_style: qwen3\n      tokenizer_path: t\n      gpt_model_path: e\n${args}`, 'inference conf');

describe('server.yml interface.port', () => {
  const takes = 'expected a port from 0 to 65535 (0: any free one), or the HTTP and RPC ports as "9997,9998"';

  it('a port that is not a number says what the key takes', () => {
    expect(server('interface:\n  framework: http\n  port: abc\n')).toBe(`c.yml:3:3: interface.port: "abc" is not valid; ${takes}`);
  });

  it('an HTTP,RPC pair with a port out of range is named at its line, not later without one', () => {
    expect(server('interface:\n  port: "99999,9998"\n')).toBe(`c.yml:2:3: interface.port: "99999,9998" is not valid; ${takes}`);
    expect(server('interface:\n  port: 9997,\n')).toBe(`c.yml:2:3: interface.port: "9997," is not valid; ${takes}`);
  });

  it('a number out of range and a value of another type are named too', () => {
    expect(server('interface:\n  port: 70000\n')).toBe('c.yml:2:3: interface.port: 70000 is out of range: must be at most 65535');
    expect(server('interface:\n  port: true\n')).toBe(`c.yml:2:3: interface.port: true is not valid; ${takes}`);
  });
});

describe('no conf message is zod text', () => {
  const bad: [string, () => string, RegExp][] = [
    ['a version that is neither text nor a number', () => inference('', 'true'), /^c\.yml:3:5: models\[0\]\.version: true is not valid; expected a version, such as 1\.0\.0$/],
    ['an empty stop word', () => inference('      stop_words: [""]\n'), /stop_words\[0\]: "" is empty; a value is needed$/],
    ['an empty list where one item is needed', () => messageOf(inferenceConfSchema, 'models: []\n', 'inference conf'), /^c\.yml:1:1: models: \[\] is empty; list at least one item$/],
    ['a decimal where a whole number goes', () => inference('      max_batch_size: 1.5\n'), /max_batch_size: expected a whole number, got 1\.5 \(a decimal number\)$/],
    ['a number below its bound', () => inference('      max_batch_size: 0\n'), /max_batch_size: 0 is out of range: must be at least 1$/],
    ['a number not above its bound', () => inference('      kv_cache_free_gpu_mem_fraction: 0\n'), /kv_cache_free_gpu_mem_fraction: 0 is out of range: must be above 0$/],
    ['a device spelling', () => messageOf(inferenceConfSchema, 'models:\n  - name: m\n    version: 1\n    device: tpu\n    inferer_args:\n      llm_style: qwen3\n      tokenizer_path: t\n      gpt_model_path: e\n', 'inference conf'), /models\[0\]\.device: "tpu" is not valid; expected auto, cpu, cuda, gpu, cuda:N or original$/],
    ['a short API key', () => server('api_key: short\n'), /^c\.yml:1:1: api_key: "short" is too short: an API key has at least 8 characters$/],
    ['an empty host', () => server('interface:\n  host: ""\n'), /interface\.host: "" is empty; a value is needed$/],
    ['a zero timeout', () => server('request_timeout_s: 0\n'), /request_timeout_s: 0 is out of range: must be above 0$/],
    ['a backup count of 0', () => server('log:\n  log_backup_count: 0\n'), /log\.log_backup_count: 0 is out of range: must be at least 1$/],
  ];
  for (const [what, message, expected] of bad) {
    it(what, () => {
      const text = message();
      expect(text).toMatch(expected);
      expect(text).not.toMatch(/Invalid|must match pattern|Too (small|big)|[<>]=/);
    });
  }
});

describe('use_mmap and use_mlock take true or false', () => {
  it('a string, a number or a list is named at its line, with the value and its type', () => {
    expect(inference('      use_mmap: "no"\n')).toBe('c.yml:8:7: models[0].inferer_args.use_mmap: expected boolean, got "no" (a string)');
    expect(inference('      use_mmap: 0\n')).toBe('c.yml:8:7: models[0].inferer_args.use_mmap: expected boolean, got 0 (a number)');
    expect(inference('      use_mlock: yes\n')).toBe('c.yml:8:7: models[0].inferer_args.use_mlock: expected boolean, got "yes" (a string)');
    expect(inference('      use_mlock: [true]\n')).toBe('c.yml:8:7: models[0].inferer_args.use_mlock: expected boolean, got [true] (a list)');
  });
});

describe('values the runtime would refuse at load are refused with the conf line', () => {
  it('threads and kv_block_size past 1024, max_seq_len under 2', () => {
    expect(inference('      threads: 2000\n')).toBe('c.yml:8:7: models[0].inferer_args.threads: 2000 is out of range: must be at most 1024');
    expect(inference('      kv_block_size: 2048\n')).toBe('c.yml:8:7: models[0].inferer_args.kv_block_size: 2048 is out of range: must be at most 1024');
    expect(inference('      max_seq_len: 1\n')).toBe('c.yml:8:7: models[0].inferer_args.max_seq_len: 1 is out of range: must be at least 2');
  });
});
