// The command line starts fast: a command loads its implementation only when it runs, so
// `grpst --help`, `grpst ps` or `grpst stop` do not pay for the build pipeline, the runtime, the
// server and their packages. Checked by the modules each command loads, recorded by module hooks
// in a real process (timings are left to benchmarks).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'grpst-cli-startup-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs grpst with args; returns its exit code, output, and the repository-relative modules it loaded. */
async function loaded(name: string, args: string[]): Promise<{ code: number; stdout: string; modules: string[] }> {
  const log = join(work, `${name}.log`);
  const r = await execa(
    process.execPath,
    ['--import', join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs'), '--import', join(repoRoot, 'test', 'helpers', 'import-log.mjs'), join(repoRoot, 'src', 'cli', 'main.ts'), ...args],
    { env: { ...process.env, GRPST_HOME: join(work, 'home'), GRPST_IMPORT_LOG: log }, reject: false, stdin: 'ignore' },
  );
  const root = `file://${repoRoot}/`;
  const modules = [...new Set(readFileSync(log, 'utf8').split('\n').filter((u) => u.startsWith(root)).map((u) => u.slice(root.length)))];
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), modules };
}

/** Modules no light command needs: the build pipeline, runtime, server, tokenizer, and heavy packages. */
const heavy = [/^src\/build\/(?!choices)/, /^src\/engine\//, /^src\/server\//, /^src\/chat\//, /^src\/archive\//, /^src\/daemon\/(start|serve)/, /node_modules\/(zod|ora|undici|yaml|@huggingface)\//];

function heavyIn(modules: string[]): string[] {
  return modules.filter((m) => heavy.some((re) => re.test(m)));
}

describe('grpst startup', () => {
  it('--help lists every command and loads none of their implementations', async () => {
    const r = await loaded('help', ['--help']);
    expect(r.code).toBe(0);
    for (const command of ['build', 'run', 'archive', 'start', 'ps', 'stop', 'logs', 'serve', 'chat']) expect(r.stdout).toMatch(new RegExp(`\\n\\s+${command}\\b`));
    expect(r.modules).toContain('src/cli/main.ts');
    expect(heavyIn(r.modules)).toEqual([]);
    expect(r.modules.filter((m) => m.startsWith('src/daemon/'))).toEqual([]);
  });

  it('ps loads the lifecycle state it lists, nothing of the build, runtime or server', async () => {
    const r = await loaded('ps', ['ps', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
    expect(r.modules).toContain('src/daemon/state.ts');
    expect(heavyIn(r.modules).filter((m) => !m.includes('node_modules/zod/'))).toEqual([]); // zod checks state files
  });

  it('build --help lists the quantization formats without loading the pipeline', async () => {
    const r = await loaded('build-help', ['build', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('int4_awq');
    expect(heavyIn(r.modules)).toEqual([]);
  });
});
