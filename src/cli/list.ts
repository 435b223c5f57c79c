// `grpst list [--json]`: the models in the Hugging Face cache (Ollama's `ollama list`), with their
// revisions, size, last change and whether grpst can build or serve them. `grpst pull` fills it;
// transformers, vLLM and `hf download` share it.
import type { Command } from 'commander';
import { formatTable } from './ps.js';

export function register(program: Command): void {
  program
    .command('list')
    .alias('ls')
    .description('list the models in the Hugging Face cache (what grpst pull fetched, shared with transformers and vLLM)')
    .option('--json', 'print the list as JSON')
    .action(async (opts: { json?: boolean }) => {
      const [{ hubEnv }, { listCachedModels, usability }, { formatBytes }] = await Promise.all([import('../hub/hub-env.js'), import('../hub/cache-list.js'), import('../util/format-bytes.js')]);
      const { cacheDir } = hubEnv();
      const models = listCachedModels(cacheDir);
      if (opts.json) {
        const rows = models.map((m) => ({ model: m.id, bytes: m.bytes, modified: m.modified.toISOString(), model_type: m.modelType, usable: usability(m), revisions: m.revisions, folder: m.folder }));
        process.stdout.write(`${JSON.stringify({ cache: cacheDir, models: rows }, null, 2)}\n`);
        return;
      }
      if (models.length === 0) {
        process.stderr.write(`no models in the Hugging Face cache ${cacheDir}; fetch one with: grpst pull Qwen/Qwen3-8B\n`);
        return;
      }
      const revision = (m: (typeof models)[number]) => m.revisions.map((r) => (r.refs.length ? r.refs.join(',') : r.commit.slice(0, 12))).join(' ');
      const rows = [['MODEL', 'REVISION', 'SIZE', 'MODIFIED', 'KIND'], ...models.map((m) => [m.id, revision(m), formatBytes(m.bytes), m.modified.toISOString().slice(0, 16).replace('T', ' '), usability(m)])];
      process.stdout.write(formatTable(rows));
    });
}
