// The chat page's files (src/server/webui/routes.ts): a server whose page cannot be read (a CLI
// bundled into one file has no web/ beside it) serves its API without the page, and says why.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { webDir, webUiRoutes, webUiRoutesIfPresent } from '../../src/server/webui/routes.js';

describe('webUiRoutesIfPresent', () => {
  it('gives the page\'s routes where its files are there', () => {
    const warnings: string[] = [];
    const routes = webUiRoutesIfPresent((line) => warnings.push(line));
    expect(routes.map((r) => r.path)).toEqual(webUiRoutes().map((r) => r.path));
    expect(routes.map((r) => r.path)).toContain('/ui/app.js');
    expect(warnings).toEqual([]);
  });

  it('gives none, with a warning naming the missing file and the setting, where they are not', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-web-'));
    try {
      expect(() => webUiRoutes(empty)).toThrow(/index\.html/);
      const warnings: string[] = [];
      expect(webUiRoutesIfPresent((line) => warnings.push(line), empty)).toEqual([]);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/the web chat page is off, its files cannot be read \(.*index\.html.*\); the API serves without it \(web_ui: false/);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
    expect(fs.existsSync(path.join(webDir, 'index.html'))).toBe(true);
  });
});
