// `grpst rm OWNER/NAME...`: a model out of the Hugging Face cache, every revision (Ollama's
// `ollama rm`). Engines built from it are folders of their own and stay.
import fs from 'node:fs';
import type { Command } from 'commander';
import { notFound } from '../util/errors.js';

export function register(program: Command): void {
  program
    .command('rm')
    .description('remove models from the Hugging Face cache (every revision); engines built from them stay')
    .argument('<models...>', 'model ids, owner/name, as grpst list shows them')
    .action(async (ids: string[]) => {
      const [{ hubEnv, checkRepoId }, { repoFolder }, { formatBytes }, { listCachedModels }] = await Promise.all([import('../hub/hub-env.js'), import('../hub/hub-cache.js'), import('../util/format-bytes.js'), import('../hub/cache-list.js')]);
      const { cacheDir } = hubEnv();
      // Every id is checked before anything is removed: a typo in the third leaves the first two.
      const cached = new Map(listCachedModels(cacheDir).map((m) => [m.id, m]));
      for (const id of ids) {
        checkRepoId(id);
        if (!cached.has(id)) throw notFound(`${id} is not in the Hugging Face cache ${cacheDir}`, `grpst list shows what is there${cached.size ? ` (${[...cached.keys()].join(', ')})` : ''}`);
      }
      for (const id of ids) {
        const m = cached.get(id)!;
        fs.rmSync(repoFolder(cacheDir, id), { recursive: true, force: true });
        process.stdout.write(`removed ${id} (${formatBytes(m.bytes)})\n`);
      }
    });
}
