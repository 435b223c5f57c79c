// Shell-quoting for the commands a dry run prints: pasting a printed line into sh runs exactly
// the argv grpst would have run.

const safe = /^[A-Za-z0-9_\-+=.,/:@%]+$/;

export function shellQuote(arg: string): string {
  if (arg !== '' && safe.test(arg)) return arg;
  // A path under an environment variable placeholder stays expandable: "$TRTLLM_DIR"/examples/...
  const env = /^\$([A-Z_][A-Z0-9_]*)(\/.*)?$/.exec(arg);
  if (env) return `"$${env[1]}"${env[2] ? shellQuote(env[2]) : ''}`;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

export function shellLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
