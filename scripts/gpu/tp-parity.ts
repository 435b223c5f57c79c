// The one-GPU tensor-parallel checks of test/gpu/tp-checks.ts without vitest (the GPU machine has
// no dev dependencies): one line per check, exit 1 when any fails.
//   node .carry/js/tp-parity.mjs   (bundled by scripts/gpu/pack-node.sh)
import { tensorParallelChecks } from '../../test/gpu/tp-checks.js';

process.env.NCCL_NVLS_ENABLE = '0';
const results = await tensorParallelChecks((l) => console.log(l));
const failed = results.filter((r) => !r.pass);
console.log(`${results.length} tensor-parallel checks, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
