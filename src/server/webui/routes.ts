// The web chat page: static files from web/ (next to src/ and dist/) plus markdown-it's browser
// build from node_modules, read once and served from memory. The page talks to the same
// server's /v1 API with the key the user types; the files themselves need no key. A strict
// Content-Security-Policy keeps model output that slipped through as HTML from running scripts.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Route } from '../router.js';

/** web/ at the package root: three levels above src/server/webui/ and dist/server/webui/ alike. */
export const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web');

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

const securityHeaders = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

interface Asset {
  body: Buffer;
  type: string;
}

function asset(file: string): Asset {
  return { body: fs.readFileSync(file), type: contentTypes[path.extname(file)] ?? 'application/octet-stream' };
}

function markdownItBrowserBuild(): string {
  // The UMD build sets window.markdownit; resolved through the package's own exports map.
  return createRequire(import.meta.url).resolve('markdown-it/browser');
}

/**
 * webUiRoutes, or none where its files cannot be read (a CLI bundled into one file has no web/
 * beside it, nor markdown-it's browser build): the API serves on without the page, and `warn`
 * says why and how to leave the page off on purpose.
 */
export function webUiRoutesIfPresent(warn: (line: string) => void, dir: string = webDir): Route[] {
  try {
    return webUiRoutes(dir);
  } catch (err) {
    warn(`the web chat page is off, its files cannot be read (${(err as Error).message}); the API serves without it (web_ui: false in the server conf leaves it off without this warning)`);
    return [];
  }
}

/** Routes of the chat page: GET / and /ui (the page) and /ui/<asset>. Throws if a file is missing. */
export function webUiRoutes(dir: string = webDir): Route[] {
  const page = asset(path.join(dir, 'index.html'));
  const files: Record<string, Asset> = {
    '/ui/app.js': asset(path.join(dir, 'app.js')),
    '/ui/chat-stream.js': asset(path.join(dir, 'chat-stream.js')),
    '/ui/think-splitter.js': asset(path.join(dir, 'think-splitter.js')),
    '/ui/markdown-stream.js': asset(path.join(dir, 'markdown-stream.js')),
    '/ui/message-actions.js': asset(path.join(dir, 'message-actions.js')),
    '/ui/style.css': asset(path.join(dir, 'style.css')),
    '/ui/markdown-it.min.js': { body: fs.readFileSync(markdownItBrowserBuild()), type: contentTypes['.js'] },
  };
  const serve = (a: Asset): Route['handler'] => async ({ res }) => {
    res.writeHead(200, { 'content-type': a.type, 'content-length': a.body.length, ...securityHeaders });
    res.end(a.body);
  };
  return [
    { method: 'GET', path: '/', guard: 'open', handler: serve(page) },
    { method: 'GET', path: '/ui', guard: 'open', handler: serve(page) },
    ...Object.entries(files).map(([p, a]): Route => ({ method: 'GET', path: p, guard: 'open', handler: serve(a) })),
  ];
}
