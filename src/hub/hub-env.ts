// Where the Hugging Face Hub is and where its downloads live, read from the environment variables
// huggingface_hub reads (same names, same defaults), so a model pulled by grpst is in the cache
// transformers, vLLM and `hf download` use, and one they pulled is found by grpst.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { badInput } from '../util/errors.js';

export interface HubEnv {
  /** https://huggingface.co, or HF_ENDPOINT (a mirror), without a trailing slash. */
  endpoint: string;
  /** The hub cache: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir: string;
  /** HF_TOKEN, else the token `hf auth login` stored ($HF_HOME/token or HF_TOKEN_PATH). */
  token?: string;
  /** HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) true: the cache only, no network. */
  offline: boolean;
}

const trueWords = new Set(['1', 'ON', 'YES', 'TRUE']);

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p;
}

export function hubEnv(env: NodeJS.ProcessEnv = process.env): HubEnv {
  const hfHome = expandHome(env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface'));
  const cacheDir = expandHome(env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || join(hfHome, 'hub'));
  const tokenPath = expandHome(env.HF_TOKEN_PATH || join(hfHome, 'token'));
  let token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
  if (!token && existsSync(tokenPath)) token = readFileSync(tokenPath, 'utf8').trim() || undefined;
  const offlineWord = (env.HF_HUB_OFFLINE || env.TRANSFORMERS_OFFLINE || '').toUpperCase();
  return {
    endpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    cacheDir,
    token,
    offline: trueWords.has(offlineWord),
  };
}

/** `owner/name` as the Hub spells model ids (letters, digits, `-`, `_`, `.`; no `--` or `..`). */
const repoIdPattern = /^[A-Za-z0-9][\w.-]{0,95}\/[A-Za-z0-9][\w.-]{0,95}$/;

/** True for text shaped like a Hub model id; says nothing of whether it exists. */
export function looksLikeRepoId(text: string): boolean {
  return repoIdPattern.test(text) && !text.includes('--') && !text.includes('..') && !/\.git$/.test(text);
}

export interface ModelRef {
  id: string;
  /** A branch, tag or commit (`Qwen/Qwen3-8B@a1b2c3...`); main when none is given. */
  revision: string;
}

/**
 * `owner/name` or `owner/name@revision` (a branch, tag or commit: a build pinned to one commit is
 * reproducible), as a model is named wherever grpst takes a folder; undefined for anything else.
 */
export function parseModelRef(text: string): ModelRef | undefined {
  const at = text.indexOf('@');
  const id = at < 0 ? text : text.slice(0, at);
  const revision = at < 0 ? 'main' : text.slice(at + 1);
  if (!looksLikeRepoId(id) || !/^[\w.][\w./-]{0,127}$/.test(revision) || revision.includes('..')) return undefined;
  return { id, revision };
}

export function checkRepoId(text: string): string {
  if (!looksLikeRepoId(text)) {
    throw badInput(`"${text}" is not a Hugging Face model id`, 'name it as owner/name, e.g. Qwen/Qwen3-8B');
  }
  return text;
}

/** A 40-hex git commit: a revision that never moves, so no lookup is needed. */
export function isCommitHash(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}
