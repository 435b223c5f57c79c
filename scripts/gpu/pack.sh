#!/usr/bin/env bash
# Fills .carry/ (git-ignored) with what the GPU machine needs and cannot fetch, within the
# device tool's 64 MiB:
#   fixtures/   the tiny-checkpoint references as text (scripts/gpu/export-fixtures.ts)
#   bin/        the kernel harness, prebuilt with nvcc (saves device minutes; run.sh rebuilds
#               there when it does not start), and the kernel timeline's CUPTI injection library
#   node.xz, node-api/, node_modules/   Node and the packages the served benchmark needs (--node)
#   addon/      grpst_native.node built with the CUDA backend (--node)
# Usage: bash scripts/gpu/pack.sh [--no-harness] [--node]
# Environment: CUDA_HOME (default /usr/local/cuda) names the toolkit whose nvcc builds the binaries;
# GRPST_GPU_BUILD (default .cache) holds their build folders (gpu-harness/, native-cuda/).
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=.carry
HARNESS=1
NODE=0
for a in "$@"; do
  case $a in
    --no-harness) HARNESS=0 ;;
    --node) NODE=1 ;;
    *) echo "pack.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
mkdir -p "$CARRY"
npx tsx scripts/gpu/export-fixtures.ts "$CARRY/fixtures"

CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
BUILD_ROOT=${GRPST_GPU_BUILD:-.cache}
export DEVICE_GENCODE=-gencode=arch=compute_90a,code=sm_90a
if [ "$HARNESS" = 1 ]; then
  [ -x "$CUDA_HOME/bin/nvcc" ] || { echo "pack.sh: no nvcc at $CUDA_HOME/bin/nvcc; set CUDA_HOME or pass --no-harness" >&2; exit 3; }
  # What travels runs on the GPU machine (compute capability 9.0) only: its sm_90a machine code
  # without the compute_90 PTX other GPUs would need, several MB less of the 64 MiB.
  CUDACXX=$CUDA_HOME/bin/nvcc cmake -S test/gpu -B "$BUILD_ROOT/gpu-harness" -DGRPST_CUDA=ON -DCUDAToolkit_ROOT="$CUDA_HOME" \
    -DGRPST_CUDA_GENCODE="$DEVICE_GENCODE" >/dev/null
  cmake --build "$BUILD_ROOT/gpu-harness" -j "$(nproc)"
  mkdir -p "$CARRY/bin"
  rm -f "$CARRY/bin/grpst_gpu_harness"
  strip -o /tmp/grpst_gpu_harness "$BUILD_ROOT/gpu-harness/grpst_gpu_harness"
  xz -T0 -9 -c /tmp/grpst_gpu_harness > "$CARRY/bin/grpst_gpu_harness.xz"
  # The kernel timeline's CUPTI injection library (run.sh stage timeline) and the libcupti it
  # links, where CUPTI's headers are (CUPTI_HOME; scripts/gpu/toolkit.sh installs them).
  CUPTI_HOME=${CUPTI_HOME:-$BUILD_ROOT/cuda13/pip-cupti/nvidia/cu13}
  rm -f "$CARRY/bin/libgrpst_timeline.so.xz" "$CARRY/bin/libcupti.so.13.xz"
  if [ -f "$CUPTI_HOME/include/cupti.h" ] && [ -f "$CUPTI_HOME/lib/libcupti.so.13" ]; then
    g++ -std=c++17 -O2 -shared -fPIC -I "$CUPTI_HOME/include" -I "$CUDA_HOME/include" test/gpu/timeline/cupti_timeline.cpp \
      -o /tmp/libgrpst_timeline.so -L "$CUPTI_HOME/lib" -l:libcupti.so.13
    xz -T0 -9 -c /tmp/libgrpst_timeline.so > "$CARRY/bin/libgrpst_timeline.so.xz"
    xz -T0 -9 -c "$CUPTI_HOME/lib/libcupti.so.13" > "$CARRY/bin/libcupti.so.13.xz"
  else
    echo "pack.sh: no CUPTI at $CUPTI_HOME (scripts/gpu/toolkit.sh installs it): no kernel timeline" >&2
  fi
fi

if [ "$NODE" = 1 ]; then
  GRPST_GPU_BUILD=$BUILD_ROOT/native-cuda bash scripts/gpu/pack-node.sh "$CARRY"
fi
du -sh "$CARRY"/* 2>/dev/null
# What travels: .carry plus the files git tracks or would add (the device tool's limit is on both).
carry_bytes=$(du -sb "$CARRY" | cut -f1)
# (a file deleted but not yet committed is still listed: stat skips it)
tree_bytes=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null || true) | awk '{ s += $1 } END { print s + 0 }')
total=$((carry_bytes + tree_bytes))
echo "total: $carry_bytes bytes in $CARRY + $tree_bytes in the working tree = $total of 67108864 (64 MiB) the device tool carries"
# (a pack of 67.05 MB was refused: keep a mebibyte to spare)
[ "$total" -lt 66060288 ] || echo "pack.sh: within 1 MiB of 64 MiB or over: leave out what the stages to run do not need" >&2
