// Module hooks that append every module URL the process resolves to the file named by
// GRPST_IMPORT_LOG (one per line): how the CLI startup test sees what a command loads.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (process.env.GRPST_IMPORT_LOG) appendFileSync(process.env.GRPST_IMPORT_LOG, `${result.url}\n`);
  return result;
}
