// The GPU parity checks of test/gpu/parity-checks.ts without vitest (the GPU machine has no
// dev dependencies): prints one line per check, exits 1 when any fails.
//   node .carry/js/gpu-parity.mjs   (bundled by scripts/gpu/pack-node.sh)
import { gpuParityChecks } from '../../test/gpu/parity-checks.js';

const results = await gpuParityChecks((l) => console.log(l));
const failed = results.filter((r) => !r.pass);
console.log(`${results.length} GPU parity checks, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
