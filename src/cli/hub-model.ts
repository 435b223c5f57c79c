// A Hugging Face id where a command takes a folder (serve --model_dir, run --engine_dir), or in an
// inference conf (serve --inference_conf): the cached snapshot, pulled first when it is not there,
// with progress on stderr.
import path from 'node:path';
/** --model_dir as a Hugging Face id (Qwen/Qwen3-8B): the cached snapshot, pulled first if needed. */
export async function hubModelFolder(value: string, flag: string): Promise<string> {
  const { namesHubModel, resolveModelSource } = await import('../hub/model-source.js');
  if (!namesHubModel(value)) return value;
  const [{ createReporter }, { grpstVersion }] = await Promise.all([import('../build/progress.js'), import('./build.js')]);
  return resolveModelSource(value, { flag, userAgent: `grpst/${grpstVersion()}`, reporter: createReporter({ stream: process.stderr }) });
}

/** The Hub models an inference conf names (paths resolve from --deploy_path, else here), pulled when missing. */
export async function pullHubModelsOf(confFile: string, deployPath: string | undefined): Promise<void> {
  const [{ pullConfModels }, { createReporter }, { grpstVersion }] = await Promise.all([import('../hub/conf-models.js'), import('../build/progress.js'), import('./build.js')]);
  await pullConfModels(confFile, path.resolve(deployPath ?? process.cwd()), () => createReporter({ stream: process.stderr }), `grpst/${grpstVersion()}`);
}
