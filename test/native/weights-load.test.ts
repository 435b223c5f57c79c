// use_mmap / use_mlock in the runtime: weights read into memory give the same logits as mapped
// ones, for engine folders and checkpoints; once read, the files may be truncated without harm;
// errors while reading are JS errors naming the file; a lock the system refuses is a warning.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyEngine } from '../../bench/soak-daemon.js';
import { loadAddon, loadEngine, type Engine } from '../../src/engine/index.js';
import type { LoadOptions, SubmitRequest } from '../../src/engine/types.js';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { makeCli } from '../helpers/grpst-cli.js';
import { greedy, run, type RunResult } from './helpers.js';

let tmp: string;
let engineDir: string;
const engines: Engine[] = [];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-weights-load-'));
  const cli = makeCli();
  engineDir = await tinyEngine(cli);
  fs.rmSync(cli.home, { recursive: true, force: true });
}, 600_000);

afterAll(async () => {
  for (const e of engines) await e.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function open(dir: string, opts: LoadOptions): Promise<Engine> {
  const e = await loadEngine(dir, { maxSeqLen: 512, maxTokensInPagedKvCache: 2048, ...opts });
  engines.push(e);
  return e;
}

/** The reference prompts, greedy, with the 20 likeliest alternatives at every position: the logits as far as a client sees them. */
const requests: SubmitRequest[] = refs('tiny-a').prompts.map((p) => ({ tokens: p.prompt_ids, sampling: greedy, maxTokens: 12, logprobs: 20, promptLogprobs: true }));

function view(r: RunResult) {
  return { tokens: r.tokens, logprobs: r.logprobs, top: r.events.flatMap((e) => e.topLogprobs ?? []), prompt: r.first.promptLogprobs };
}

async function answers(engine: Engine): Promise<ReturnType<typeof view>[]> {
  const out = [];
  for (const r of requests) out.push(view(await run(engine, r)));
  return out;
}

describe('weights read into memory equal mapped ones', () => {
  for (const [what, dir] of [
    ['an engine folder', () => engineDir],
    ['a Hugging Face checkpoint', () => checkpoint('tiny-a')],
  ] as const) {
    it(`${what}: same tokens, logprobs, alternatives and prompt logprobs`, async () => {
      const mapped = await open(dir(), {});
      const read = await open(dir(), { useMmap: false });
      expect(mapped.info.weights).toMatchObject({ mapped: true, lockAsked: false, locked: false });
      expect(read.info.weights).toMatchObject({ mapped: false, lockAsked: false, locked: false });
      expect(read.info.weights!.bytes).toBe(mapped.info.weights!.bytes);
      expect(read.info.weights!.bytes).toBeGreaterThan(0);
      const expected = await answers(mapped);
      expect(expected[0].tokens).toHaveLength(12);
      expect(await answers(read)).toEqual(expected);
    });
  }

  it("a draft model's weights are read too, and counted with the model's", async () => {
    const speculative = { method: 'draft_model' as const, numSpeculativeTokens: 3, model: checkpoint('tiny-a') };
    const alone = (await open(checkpoint('tiny-b'), { useMmap: false })).info.weights!;
    const draft = (await open(checkpoint('tiny-a'), { useMmap: false })).info.weights!;
    const mapped = await open(checkpoint('tiny-b'), { speculative });
    const read = await open(checkpoint('tiny-b'), { speculative, useMmap: false });
    expect(read.info.weights).toMatchObject({ mapped: false, bytes: alone.bytes + draft.bytes });
    const req: SubmitRequest = { tokens: refs('tiny-b').prompts[0].prompt_ids, sampling: greedy, maxTokens: 12, logprobs: 5 };
    expect(view(await run(read, req))).toEqual(view(await run(mapped, req)));
  });

  it('read, the engine answers the same after its weights file is truncated and rewritten', async () => {
    const copy = path.join(tmp, 'engine-copy');
    fs.cpSync(engineDir, copy, { recursive: true });
    const engine = await open(copy, { useMmap: false });
    const before = await answers(engine);
    const weights = path.join(copy, 'rank0.weights');
    const size = fs.statSync(weights).size;
    fs.truncateSync(weights, 0);
    expect(await answers(engine)).toEqual(before);
    fs.writeFileSync(weights, Buffer.alloc(size, 0x7f));
    expect(await answers(engine)).toEqual(before);
  });
});

describe('errors while reading are JS errors that name the file', () => {
  const table = (file: string) => [{ name: 'model.embed_tokens.weight', file, offset: 0, nbytes: 16, dtype: 'BF16', shape: [2, 4] }];
  it('a file that cannot be read (a folder)', async () => {
    const ckpt = openCheckpoint(checkpoint('tiny-a'));
    const folder = path.join(tmp, 'not-a-file');
    fs.mkdirSync(folder, { recursive: true });
    await expect(loadAddon().createEngine(ckpt.model, table(folder), { useMmap: false }, () => {})).rejects.toThrow(
      new RegExp(`cannot read ${folder} at byte 0 of \\d+: Is a directory`),
    );
  });

  it('a file that ends before the size it had when opened (a sysfs file stands in for one truncated during the load)', async (ctx) => {
    const file = '/sys/devices/system/cpu/online';
    if (!fs.existsSync(file) || fs.statSync(file).size <= fs.readFileSync(file).length) ctx.skip();
    const ckpt = openCheckpoint(checkpoint('tiny-a'));
    await expect(loadAddon().createEngine(ckpt.model, table(file), { useMmap: false }, () => {})).rejects.toThrow(
      /\/sys\/devices\/system\/cpu\/online ended at byte \d+ while it was read, but had \d+ bytes when opened: it was truncated or replaced during the load/,
    );
  });

  it('useMmap and useMlock must be booleans', () => {
    const ckpt = openCheckpoint(checkpoint('tiny-a'));
    const t = [...ckpt.tensors.values()].map((x) => ({ ...x, shape: [...x.shape] }));
    expect(() => loadAddon().createEngine(ckpt.model, t, { useMmap: 'no' } as never, () => {})).toThrow(/useMmap must be a boolean/);
    expect(() => loadAddon().createEngine(ckpt.model, t, { useMlock: 1 } as never, () => {})).toThrow(/useMlock must be a boolean/);
  });
});

describe('use_mlock', () => {
  it('reports the lock: locked, or refused with a warning that names RLIMIT_MEMLOCK and ulimit -l', async () => {
    const engine = await open(engineDir, { useMmap: false, useMlock: true });
    const w = engine.info.weights!;
    expect(w).toMatchObject({ mapped: false, lockAsked: true });
    if (w.locked) {
      expect(w.lockWarning).toBeUndefined();
      // The lock shows in the process's own accounting.
      const locked = Number(/^VmLck:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
      expect(locked).toBeGreaterThanOrEqual(w.bytes);
    } else {
      expect(w.lockWarning).toMatch(/^use_mlock: could not lock .* of weights in RAM \(mlock: .*; RLIMIT_MEMLOCK, the most memory this process may lock, is /);
      expect(w.lockWarning).toMatch(/ulimit -l unlimited|free memory/);
    }
    // Locked or not, it serves.
    expect((await run(engine, requests[0])).tokens).toHaveLength(12);
  });
});
