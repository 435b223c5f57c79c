// grpst run's end-of-turn ids: the tokenizer's eos with generation_config.json's and config.json's
// eos_token_id, whatever shape those take (a config transformers wrote without one says null).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tokenizer } from '../../src/chat/tokenizer.js';
import { stopTokenIds } from '../../src/cli/run.js';
import { tokenizerDir } from '../helpers/fixtures.js';

const tokenizer = Tokenizer.fromDir(tokenizerDir);
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function folder(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'grpst-stop-'));
  dirs.push(dir);
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), JSON.stringify(body));
  return dir;
}

describe('stopTokenIds', () => {
  it('joins the tokenizer eos with both files, a number or a list', () => {
    const dir = folder({ 'generation_config.json': { eos_token_id: [151645, 151643] }, 'config.json': { eos_token_id: 7 } });
    expect(new Set(stopTokenIds(tokenizer, [dir]))).toEqual(new Set([tokenizer.eosTokenId!, 151645, 151643, 7]));
  });

  it('adds nothing for a null or missing eos_token_id (configs written without one)', () => {
    const dir = folder({ 'config.json': { eos_token_id: null }, 'generation_config.json': { eos_token_id: [null, 'x', -1] } });
    expect(stopTokenIds(tokenizer, [dir])).toEqual([tokenizer.eosTokenId]);
  });
});
