// `grpst ps` prints the seed's table; a long cell (a deep deploy path) widens its column for
// every row instead of pushing that row's later cells out of line.
import { describe, expect, it } from 'vitest';
import { formatTable } from '../../src/cli/ps.js';

describe('grpst ps table', () => {
  it('keeps every column aligned when one cell is longer than 20 characters', () => {
    const deep = '/home/someone/.grps/a-server-with-a-long-name';
    const out = formatTable([
      ['PORT(HTTP,RPC)', 'NAME', 'PID', 'DEPLOY_PATH', 'STATUS'],
      ['9997', 'short', '101', '/tmp/a', 'running'],
      ['9998', 'a-server-with-a-long-name', '102', deep, 'starting'],
    ]);
    const lines = out.trimEnd().split('\n');
    for (const header of ['NAME', 'PID', 'DEPLOY_PATH', 'STATUS']) {
      const at = lines[0].indexOf(header);
      const cells = lines.slice(1).map((l) => l.slice(at).split(/\s{2,}|\s$/)[0]);
      expect(cells.every((c) => c.length > 0 && !c.startsWith(' ')), `${header}: ${JSON.stringify(lines)}`).toBe(true);
    }
    expect(lines[2].indexOf('starting')).toBe(lines[0].indexOf('STATUS'));
    expect(lines[1].indexOf('running')).toBe(lines[0].indexOf('STATUS'));
    // Short tables keep the seed's 20-character columns.
    expect(formatTable([['A', 'B'], ['x', 'y']])).toBe(`${'A'.padEnd(20)}B\n${'x'.padEnd(20)}y\n`);
  });
});
