// `grpst archive [DIR] [-o FILE] [--include_engine]`: a project folder -> server.mar.
import path from 'node:path';
import type { Command } from 'commander';
import { formatBytes } from '../util/format-bytes.js';

export function register(program: Command): void {
  program
    .command('archive')
    .description('pack a project folder (conf/ and anything else it holds) into server.mar, with a sha256 manifest')
    .argument('[dir]', 'project folder', '.')
    .option('-o, --output <file>', 'archive to write', 'server.mar')
    .option('--include_engine', 'copy the engines the inference confs name into the archive (self-contained)', false)
    .action(async (dir: string, opts: { output: string; include_engine: boolean }) => {
      const { writeArchive } = await import('../archive/write.js');
      const result = await writeArchive({ projectDir: dir, output: opts.output, includeEngine: opts.include_engine });
      for (const note of result.notes) process.stderr.write(`note: ${note}\n`);
      const shown = path.relative(process.cwd(), result.output) || result.output;
      process.stdout.write(`${shown}: ${result.files} ${result.files === 1 ? 'file' : 'files'}, ${formatBytes(result.bytes)}, sha256 manifest\n`);
    });
}
