// Which of a repository's files a pull takes. Patterns match as huggingface_hub's allow_patterns /
// ignore_patterns do (Python's fnmatch on the whole path: `*` crosses `/`), so `--include` and
// `--exclude` mean what `hf download --include/--exclude` mean.

/** Weights in formats grpst does not read; a Qwen3 repository may carry them beside safetensors. */
export const DEFAULT_EXCLUDES = ['*.bin', '*.pth', '*.pt', '*.gguf', '*.onnx', '*.h5', '*.msgpack', '*.ckpt', '*.ot', '*.tflite', '*.mlmodel', '*.ggml'];

/** Python's fnmatch.translate, for the subset patterns use: * ? [seq] [!seq]. */
export function fnmatchRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '*') out += '.*';
    else if (ch === '?') out += '.';
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) {
        out += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, end);
      body = body.startsWith('!') ? `^${body.slice(1)}` : body;
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else out += ch.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`, 's');
}

export interface FileFilter {
  include?: readonly string[];
  exclude?: readonly string[];
}

/** The files to take: those an include names (all when none), less those an exclude (or the defaults) names. */
export function selectFiles(files: readonly string[], filter: FileFilter): string[] {
  const include = (filter.include ?? []).map(fnmatchRegExp);
  // An explicit --include is taken as meant: the default exclusions apply only without one.
  const exclude = [...(include.length ? [] : DEFAULT_EXCLUDES), ...(filter.exclude ?? [])].map(fnmatchRegExp);
  return files.filter((f) => (include.length === 0 || include.some((r) => r.test(f))) && !exclude.some((r) => r.test(f)));
}
