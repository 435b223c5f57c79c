// `grpst pull owner/name [--revision R] [--include P...] [--exclude P...] [--json]`: a Hugging Face
// checkpoint into the hub cache (HF_HUB_CACHE / HF_HOME, shared with transformers and vLLM). The
// snapshot folder goes to stdout; build, serve and run also take the id itself as --model_dir.
import type { Command } from 'commander';
import { ExitCode, GrpstError } from '../util/errors.js';
import { grpstVersion } from './build.js';

interface PullOptions {
  revision: string;
  include?: string[];
  exclude?: string[];
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('pull')
    .description('download a Hugging Face checkpoint (e.g. Qwen/Qwen3-8B) into the Hugging Face cache; build, serve and run take the id as --model_dir')
    .argument('<model>', 'model id on the Hub, owner/name (or owner/name@revision)')
    .option('--revision <rev>', 'branch, tag or commit', 'main')
    .option('--include <pattern...>', 'only files matching these patterns (fnmatch, as hf download --include)')
    .option('--exclude <pattern...>', 'leave out files matching these patterns (weights in other formats, *.bin *.pth *.gguf ..., are left out by default)')
    .option('--json', 'print a JSON summary on stdout (progress goes to stderr)')
    .action(async (model: string, opts: PullOptions) => {
      const [{ pullModel }, { createReporter }, { parseModelRef }] = await Promise.all([import('../hub/pull.js'), import('../build/progress.js'), import('../hub/hub-env.js')]);
      // owner/name@revision, as --model_dir takes it, is the same as --revision.
      const ref = parseModelRef(model);
      if (ref && model.includes('@')) {
        if (opts.revision !== 'main' && opts.revision !== ref.revision) throw new GrpstError(`${model} names revision ${ref.revision} and --revision says ${opts.revision}`, { hint: 'give the revision once' });
        [model, opts.revision] = [ref.id, ref.revision];
      }
      const reporter = createReporter({ stream: process.stderr });
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const result = await pullModel(model, { revision: opts.revision, include: opts.include, exclude: opts.exclude, reporter, userAgent: `grpst/${grpstVersion()}`, signal: abort.signal }).catch((e) => {
          reporter.fail();
          throw e;
        });
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ ok: true, model: result.repoId, revision: result.revision, commit: result.commit, dir: result.dir, files: result.files, bytes_fetched: result.bytesFetched }, null, 2)}\n`);
        } else {
          process.stdout.write(`${result.dir}\n`);
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
