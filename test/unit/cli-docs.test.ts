// docs/cli.md against the command line itself: every command has its section, every flag its row
// there (and no row names a flag that does not exist), and a default the code states (commander's
// own, or "(default X)" in the flag's help) is the one the row gives.
import fs from 'node:fs';
import path from 'node:path';
import type { Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { repoRoot } from '../helpers/fixtures.js';

const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'cli.md'), 'utf8');

/** The table rows of `## grpst <name>`, keyed by the long flag each row starts with. */
function rowsOf(name: string): Map<string, string> {
  const section = doc.split(/^## /m).find((s) => s.startsWith(`grpst ${name}\n`));
  expect(section, `docs/cli.md has no "## grpst ${name}" section`).toBeDefined();
  const rows = new Map<string, string>();
  for (const line of section!.split('\n')) {
    const flag = /^\| `(?:-\w, )?(--[a-z_-]+)/.exec(line);
    if (flag) rows.set(flag[1], line);
  }
  return rows;
}

/** The default the code states for an option, as the docs would write it. */
function statedDefault(o: Option): string | undefined {
  if (o.defaultValue !== undefined && typeof o.defaultValue !== 'boolean') return String(o.defaultValue);
  const said = /\(default:? ([^;),]+)/.exec(o.description)?.[1];
  return said && /^[\w.-]+$/.test(said) ? said : undefined;
}

describe('docs/cli.md', () => {
  const program = buildProgram();

  it('has a section per command, a row per flag, and no row for a flag that does not exist', () => {
    for (const command of program.commands) {
      const rows = rowsOf(command.name());
      const flags = command.options.map((o) => o.long!).filter((f) => f !== '--help');
      expect([...rows.keys()].sort(), command.name()).toEqual([...flags].sort());
    }
  });

  it('gives each default the code states', () => {
    for (const command of program.commands) {
      const rows = rowsOf(command.name());
      for (const o of command.options) {
        const wanted = statedDefault(o);
        if (wanted === undefined) continue;
        const defaultCell = rows.get(o.long!)!.split('|')[2];
        expect(defaultCell, `${command.name()} ${o.long}`).toContain(wanted);
      }
    }
  });
});
