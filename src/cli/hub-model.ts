// A Hugging Face id where a command takes a folder (serve --model_dir, run --engine_dir): the
// cached snapshot, pulled first when it is not there, with progress on stderr.
/** --model_dir as a Hugging Face id (Qwen/Qwen3-8B): the cached snapshot, pulled first if needed. */
export async function hubModelFolder(value: string, flag: string): Promise<string> {
  const { namesHubModel, resolveModelSource } = await import('../hub/model-source.js');
  if (!namesHubModel(value)) return value;
  const [{ createReporter }, { grpstVersion }] = await Promise.all([import('../build/progress.js'), import('./build.js')]);
  return resolveModelSource(value, { flag, userAgent: `grpst/${grpstVersion()}`, reporter: createReporter({ stream: process.stderr }) });
}
