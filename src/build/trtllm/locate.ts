// Finds TensorRT-LLM's pieces: the Python that has tensorrt_llm, the example scripts in its source
// tree (examples/qwen in older releases, examples/models/core/qwen in newer ones; only releases
// from v1.0 on convert Qwen3, and they use the newer folder) and the trtllm-build console script.
import { accessSync, constants, existsSync, realpathSync, statSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { missingTool } from '../../util/errors.js';

/** Where convert_checkpoint.py for Qwen lives, newest layout last. */
export const convertScriptPaths = ['examples/qwen/convert_checkpoint.py', 'examples/models/core/qwen/convert_checkpoint.py'];
/** The layout of the releases that convert Qwen3 (v1.0 on): what a plan names when neither exists yet. */
const newestConvertScript = convertScriptPaths[convertScriptPaths.length - 1];
export const quantizeScriptPath = 'examples/quantization/quantize.py';

export interface TrtllmTools {
  python: string;
  trtllmDir: string;
  convertScript: string;
  quantizeScript: string;
  trtllmBuild: string;
}

export interface LocateInput {
  trtllm_dir?: string;
  python?: string;
  trtllm_build?: string;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Like `command -v`: an absolute or relative path as given, or the first match on PATH. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.includes('/')) {
    const p = resolve(name);
    return isExecutable(p) ? p : undefined;
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

/** The paths as they would be, without requiring them to exist (dry runs print these). */
export function plannedTools(input: LocateInput, env: NodeJS.ProcessEnv = process.env): TrtllmTools {
  // An empty variable counts as unset.
  const trtllmDir = input.trtllm_dir || env.TRTLLM_DIR || '$TRTLLM_DIR';
  const dirKnown = trtllmDir !== '$TRTLLM_DIR';
  const convert = (dirKnown && convertScriptPaths.map((p) => join(trtllmDir, p)).find((p) => existsSync(p))) || join(trtllmDir, newestConvertScript);
  return {
    python: input.python || env.TRTLLM_PYTHON || 'python3',
    trtllmDir,
    convertScript: convert,
    quantizeScript: join(trtllmDir, quantizeScriptPath),
    trtllmBuild: input.trtllm_build || env.TRTLLM_BUILD || 'trtllm-build',
  };
}

/** The same, checked: each missing piece is an error that says what to install. */
export function locateTools(input: LocateInput, needs: { convert: boolean; quantize: boolean }, env: NodeJS.ProcessEnv = process.env): TrtllmTools {
  const planned = plannedTools(input, env);
  const python = findExecutable(planned.python, env);
  if (!python) {
    throw missingTool(
      `Python interpreter "${planned.python}" not found`,
      'install Python 3.10+ with TensorRT-LLM (pip install tensorrt_llm), then pass --python PATH or set TRTLLM_PYTHON if it is not python3 on PATH',
    );
  }
  if (planned.trtllmDir === '$TRTLLM_DIR') {
    throw missingTool(
      "TensorRT-LLM's source tree is needed for its example scripts (convert_checkpoint.py, quantize.py)",
      'git clone https://github.com/NVIDIA/TensorRT-LLM at the tag of your installed tensorrt_llm, then pass --trtllm_dir DIR or set TRTLLM_DIR',
    );
  }
  const dir = resolve(planned.trtllmDir);
  if (!existsSync(dir)) throw missingTool(`TensorRT-LLM folder ${dir} does not exist`, 'pass --trtllm_dir (or TRTLLM_DIR) pointing at a TensorRT-LLM source checkout');
  const convertScript = convertScriptPaths.map((p) => join(dir, p)).find((p) => existsSync(p));
  if (needs.convert && !convertScript) {
    throw missingTool(
      `${dir} has neither ${convertScriptPaths.join(' nor ')}`,
      'point --trtllm_dir at the root of a TensorRT-LLM source checkout (v1.0 or later: earlier releases cannot convert Qwen3)',
    );
  }
  const quantizeScript = join(dir, quantizeScriptPath);
  if (needs.quantize && !existsSync(quantizeScript)) {
    throw missingTool(`${dir} has no ${quantizeScriptPath}`, 'point --trtllm_dir at the root of a TensorRT-LLM source checkout (v1.0 or later: earlier releases cannot convert Qwen3)');
  }
  const trtllmBuild = findTrtllmBuild(planned.trtllmBuild, python, env);
  if (!trtllmBuild) {
    throw missingTool(
      `trtllm-build not found${planned.trtllmBuild !== 'trtllm-build' ? ` at ${planned.trtllmBuild}` : ' beside the Python or on PATH'}`,
      'pip install tensorrt_llm into that Python (it installs trtllm-build), or pass --trtllm_build PATH / set TRTLLM_BUILD',
    );
  }
  return { python, trtllmDir: dir, convertScript: convertScript ?? join(dir, newestConvertScript), quantizeScript, trtllmBuild };
}

function findTrtllmBuild(name: string, python: string, env: NodeJS.ProcessEnv): string | undefined {
  if (name !== 'trtllm-build' || isAbsolute(name)) return findExecutable(name, env);
  // A virtualenv's console scripts sit beside its python; look there before PATH.
  for (const dir of new Set([dirname(python), dirname(safeRealpath(python))])) {
    const p = join(dir, 'trtllm-build');
    if (isExecutable(p)) return p;
  }
  return findExecutable(name, env);
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
