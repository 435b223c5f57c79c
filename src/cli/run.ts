// `grpst run --engine_dir DIR --input_text "..."`: the seed's run.py check without a server. Loads
// the engine (or a Hugging Face checkpoint), applies the chat template, streams the answer to the
// terminal and ends with token counts and prefill / decode speeds.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { Tokenizer } from '../chat/tokenizer.js';
import type { EngineManifest } from '../build/manifest.js';
import type { FinishReason } from '../engine/types.js';
import { shellQuote } from '../util/shell.js';
import { badInput } from '../util/errors.js';
import { booleanOrWord, switchValue, type NotABoolean } from './options.js';
import { hubModelFolder } from './hub-model.js';

function number(min: number, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min}${max < Infinity ? ` to ${max}` : ' up'}.`);
    return n;
  };
}

// top_p 0 would keep no token: the engine refuses it, so it is refused here, by the flag's name.
function topP(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw new InvalidArgumentError('expected a number above 0, at most 1 (1 keeps every token; use --top_k 1 or --temperature 0 for greedy).');
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number.');
  return n;
}

/** End-of-turn ids: the tokenizer's eos, generation_config.json's and the model config's. */
export function stopTokenIds(tokenizer: Tokenizer, dirs: string[]): number[] {
  const ids = new Set<number>();
  if (tokenizer.eosTokenId !== undefined) ids.add(tokenizer.eosTokenId);
  for (const dir of dirs) {
    for (const file of ['generation_config.json', 'config.json']) {
      const p = join(dir, file);
      if (!existsSync(p)) continue;
      try {
        // null (a config made by transformers without one) or anything not an id adds nothing.
        const eos = (JSON.parse(readFileSync(p, 'utf8')) as { eos_token_id?: unknown }).eos_token_id;
        for (const id of Array.isArray(eos) ? eos : [eos]) if (Number.isInteger(id) && (id as number) >= 0) ids.add(id as number);
      } catch {
        /* unreadable optional file: the tokenizer's eos still applies */
      }
    }
  }
  return [...ids];
}

interface RunOptions {
  engine_dir: string;
  tokenizer_dir?: string;
  input_text: string;
  max_output_len: number;
  enable_thinking?: boolean | NotABoolean;
  temperature: number;
  top_k?: number;
  top_p?: number;
  seed?: number;
  threads?: number;
}

type EngineLimits = EngineManifest['limits'];

/**
 * An engine folder's build limits (absent for a Hugging Face checkpoint), after checking the
 * prompt and the output length fit them, as the server does for each request.
 */
function engineLimits(manifest: EngineManifest | undefined, promptTokens: number, maxOutput: number): EngineLimits | undefined {
  if (!manifest) return undefined;
  const limits = manifest.limits;
  if (promptTokens > limits.max_input_len) {
    throw badInput(`the prompt has ${promptTokens} tokens, past the engine's max_input_len ${limits.max_input_len}`, 'shorten --input_text, or rebuild the engine with a larger --max_input_len');
  }
  if (promptTokens + maxOutput > limits.max_seq_len) {
    throw badInput(
      `the prompt's ${promptTokens} tokens and --max_output_len ${maxOutput} need ${promptTokens + maxOutput}, past the engine's max_seq_len ${limits.max_seq_len}`,
      limits.max_seq_len - promptTokens >= 1
        ? `pass --max_output_len ${limits.max_seq_len - promptTokens} or less, shorten --input_text, or rebuild the engine with a larger --max_seq_len`
        : 'shorten --input_text, or rebuild the engine with a larger --max_seq_len',
    );
  }
  return limits;
}

/** --engine_dir must be an engine folder or a checkpoint folder; said before the tokenizer is looked for. */
function checkEngineDir(engineDir: string): void {
  const fix = 'pass the folder grpst build wrote (--output_dir), or a Hugging Face checkpoint folder';
  if (!existsSync(engineDir)) throw badInput(`--engine_dir ${engineDir} does not exist`, fix);
  if (!statSync(engineDir).isDirectory()) throw badInput(`--engine_dir ${engineDir} is a file, not a folder`, `pass the folder that holds it: ${dirname(engineDir)}`);
  if (existsSync(join(engineDir, 'engine.json')) || existsSync(join(engineDir, 'config.json'))) return;
  // A project folder (conf/ + engine/) is the usual near miss: name the engine inside it.
  const inside = readdirSync(engineDir, { withFileTypes: true }).find((e) => e.isDirectory() && existsSync(join(engineDir, e.name, 'engine.json')));
  throw badInput(
    `--engine_dir ${engineDir} holds neither engine.json (an engine) nor config.json (a checkpoint)`,
    inside ? `pass the engine folder inside it: --engine_dir ${shellQuote(join(engineDir, inside.name))}` : fix,
  );
}

export function register(program: Command): void {
  program
    .command('run')
    .description('load an engine, generate an answer to --input_text and report the speed (no server)')
    .requiredOption('--engine_dir <dir>', 'engine folder from grpst build (or a Hugging Face checkpoint folder)')
    .option('--tokenizer_dir <dir>', 'folder with tokenizer.json and the chat template (default: the engine folder)')
    .requiredOption('--input_text <text>', 'the user message')
    .option('--max_output_len <n>', 'tokens to generate at most', positiveInt, 50)
    .option('--enable_thinking [bool]', 'let Qwen3 think first (its <think> block is printed too); --enable_thinking false is the default', booleanOrWord)
    .option('--temperature <t>', 'sampling temperature, 0 to 2 as in the HTTP API; 0 = greedy', number(0, 2), 0)
    .option('--top_k <k>', 'sample among the k likeliest tokens', positiveInt)
    .option('--top_p <p>', 'nucleus sampling mass, above 0 and at most 1', topP)
    .option('--seed <n>', 'seed for sampling', number(0))
    .option('--threads <n>', 'CPU threads (default: all cores)', positiveInt)
    .action(async (opts: RunOptions) => {
      const enableThinking = switchValue('--enable_thinking', opts.enable_thinking) === true;
      const engineDir = resolve(await hubModelFolder(opts.engine_dir, '--engine_dir'));
      checkEngineDir(engineDir);
      // An empty message (an unset shell variable in --input_text "$PROMPT") would still generate.
      if (opts.input_text.trim() === '') throw badInput('--input_text is empty', 'pass the message to answer, e.g. --input_text "你好，你是谁？"');
      const tokenizerDir = resolve(opts.tokenizer_dir ?? engineDir);
      if (!existsSync(join(tokenizerDir, 'tokenizer.json'))) {
        throw badInput(`${tokenizerDir} has no tokenizer.json`, 'pass --tokenizer_dir with the Hugging Face checkpoint (engines from grpst build carry their tokenizer)');
      }
      // The tokenizer, template and runtime load here, not when the CLI starts.
      const [{ ChatTemplate }, { IncrementalDecoder }, { renderPrompt }, { Tokenizer }, { loadEngine }, { defaultSampling }, { isEngineFolder, readManifest }] = await Promise.all([
        import('../chat/chat-template.js'),
        import('../chat/incremental-decoder.js'),
        import('../chat/render-prompt.js'),
        import('../chat/tokenizer.js'),
        import('../engine/load.js'),
        import('../engine/types.js'),
        import('../build/manifest.js'),
      ]);
      const tokenizer = Tokenizer.fromDir(tokenizerDir);
      const template = ChatTemplate.fromDir(tokenizerDir);
      const prompt = renderPrompt(template, tokenizer, [{ role: 'user', content: opts.input_text }], { enableThinking });
      const need = prompt.ids.length + opts.max_output_len;
      const limits = engineLimits(isEngineFolder(engineDir) ? readManifest(engineDir) : undefined, prompt.ids.length, opts.max_output_len);
      // A context just large enough (at least 4096) keeps the KV cache small; never past the engine's.
      const engine = await loadEngine(engineDir, { threads: opts.threads, maxSeqLen: Math.min(limits?.max_seq_len ?? Infinity, Math.max(4096, need + 16)) });
      const out = process.stdout;
      try {
        const decoder = new IncrementalDecoder(tokenizer, { skipSpecialTokens: true });
        const start = performance.now();
        let firstAt = 0;
        let generated = 0;
        let finish: FinishReason | undefined;
        for await (const ev of engine.submit({
          tokens: prompt.ids,
          sampling: { ...defaultSampling, temperature: opts.temperature, topK: opts.top_k ?? 0, topP: opts.top_p ?? 1, seed: opts.seed },
          maxTokens: opts.max_output_len,
          stopTokenIds: stopTokenIds(tokenizer, [engineDir, tokenizerDir]),
        })) {
          if (ev.tokens.length > 0 && generated === 0) firstAt = performance.now();
          generated += ev.tokens.length;
          out.write(decoder.push(ev.tokens));
          if (ev.finishReason) finish = ev.finishReason;
          if (ev.finishReason === 'error') throw new Error(ev.error ?? 'generation failed');
        }
        out.write(`${decoder.flush()}\n`);
        const end = performance.now();
        const prefillS = (firstAt - start) / 1000;
        const decodeS = (end - firstAt) / 1000;
        const info = engine.info;
        const lines = [
          `---`,
          // The runtime names a Hugging Face checkpoint's format "none"; the user passed a checkpoint, so say that.
          `engine: ${engineDir} (${info.quantization === 'none' ? 'unquantized checkpoint' : info.quantization}, KV cache ${info.kvCacheDtype}, ${info.device} ${info.kernels}, ${info.threads} thread${info.threads === 1 ? '' : 's'})`,
          `prompt tokens: ${prompt.ids.length}, output tokens: ${generated} (${finish === 'stop' ? 'stopped at end of turn' : finish === 'length' ? 'reached --max_output_len' : finish})`,
          `prefill: ${(prompt.ids.length / Math.max(prefillS, 1e-9)).toFixed(1)} tok/s (first token after ${(prefillS * 1000).toFixed(0)} ms)`,
          `decode: ${generated > 1 ? ((generated - 1) / Math.max(decodeS, 1e-9)).toFixed(1) : '-'} tok/s`,
        ];
        out.write(`${lines.join('\n')}\n`);
      } finally {
        await engine.close();
      }
    });
}
