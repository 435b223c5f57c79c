// Runs one TensorRT-LLM command: every output line goes to the build log, a condensed one to the
// reporter; a failure carries the command's last lines and exit code.
import { appendFileSync } from 'node:fs';
import { execa } from 'execa';
import { failed, missingTool } from '../../util/errors.js';
import type { Reporter } from '../progress.js';
import { shellLine } from '../../util/shell.js';
import type { TrtllmStep } from './commands.js';

const tailLines = 25;
// eslint-disable-next-line no-control-regex
const ansi = /\u001b\[[0-9;?]*[A-Za-z]/g;

/** Known messages of a GPU without FP8 (pre-Ada), from TensorRT and TensorRT-LLM. */
const noFp8Patterns = [
  /FP8 precision require[s]? hardware with FP8 support/i,
  /FP8 Q\/DQ layers require hardware with FP8 support/i,
  /Fp8 FMHA cannot be enabled on pre-Hopper/i,
  /fp8.*not supported on (this|the current) (GPU|device)/i,
];

export interface StepRun {
  log: string;
  reporter: Reporter;
  env?: NodeJS.ProcessEnv;
  /** Aborts the running command (SIGTERM, then SIGKILL). */
  signal?: AbortSignal;
}

export async function runStep(step: TrtllmStep, run: StepRun): Promise<void> {
  appendFileSync(run.log, `$ ${shellLine(step.argv)}\n`);
  const tail: string[] = [];
  const sub = execa(step.argv[0], step.argv.slice(1), {
    all: true,
    buffer: false,
    reject: false,
    stdin: 'ignore',
    env: { PYTHONUNBUFFERED: '1', ...run.env },
    cancelSignal: run.signal,
    forceKillAfterDelay: 5000,
  });
  for await (const raw of sub.iterable({ from: 'all' })) {
    // tqdm redraws with carriage returns: keep the last state of the line.
    const line = String(raw).split('\r').pop()!.replace(ansi, '').trimEnd();
    appendFileSync(run.log, `${line}\n`);
    if (!line) continue;
    tail.push(line);
    if (tail.length > tailLines) tail.shift();
    run.reporter.progress(undefined, line);
  }
  const result = await sub;
  if (result.failed && (result as { code?: string }).code === 'ENOENT') {
    throw missingTool(`${step.argv[0]} could not be started (not found)`, 'install TensorRT-LLM (pip install tensorrt_llm) or fix --python / --trtllm_build');
  }
  if (result.isCanceled) throw failed(`${step.name} was interrupted`);
  if (result.exitCode === 0) return;
  const how = result.exitCode !== undefined ? `exit code ${result.exitCode}` : `signal ${result.signal}`;
  const last = tail.join('\n');
  appendFileSync(run.log, `[grpst] ${step.name} failed with ${how}\n`);
  if (noFp8Patterns.some((p) => p.test(last))) {
    throw failed(
      `${step.name} failed (${how}): this GPU cannot run FP8. TensorRT reports "Networks with FP8 precision require hardware with FP8 support": ` +
        `FP8 needs compute capability 8.9 or newer (Ada L4/L40/RTX 40, Hopper H100/H200, Blackwell); older GPUs such as A100, V100 or T4 have no FP8 units.\n` +
        `last lines of ${step.name}:\n${indent(last)}`,
      'build int8_sq, int8_wo or int4_awq instead, or build fp8 on a GPU with FP8 support',
    );
  }
  throw failed(`${step.name} failed (${how}). Last lines:\n${indent(last)}`, `see the whole log in ${run.log}`);
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}
