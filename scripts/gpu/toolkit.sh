#!/usr/bin/env bash
# A CUDA 13 toolkit for building the CUDA backend and the GPU harness on a machine without one
# (and without a GPU): nvcc, the runtime, cuBLAS, CCCL and NCCL from their PyPI wheels, laid out as
# a toolkit folder that nvcc, CMake's FindCUDAToolkit and scripts/gpu/pack.sh accept, plus
# cuobjdump / nvdisasm for reading the SASS. The versions are the ones the GPU machine's CUDA 13.0
# runs.
# Usage: bash scripts/gpu/toolkit.sh [DIR]   (default .cache/cuda13; idempotent)
# Then:  CUDA_HOME=DIR/toolkit NCCL_HOME=DIR/pip-nccl/nvidia/nccl bash scripts/gpu/pack.sh [--node]
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=$(realpath -m "${1:-.cache/cuda13}")
WHEELS=$DIR/wheels
TK=$DIR/toolkit
mkdir -p "$WHEELS"

install() {  # pip-installs wheels into DIR/$1 unless a marker says they are there
  local dest=$DIR/$1
  shift
  [ -f "$dest/.installed" ] && return
  python3 -m pip install --quiet --no-deps --target "$dest" "$@"
  touch "$dest/.installed"
}
install pip-cuda nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
  nvidia-cuda-runtime==13.0.88 nvidia-cublas==13.0.2.14 nvidia-cuda-cccl==13.0.85
install pip-nccl nvidia-nccl-cu13==2.31.2
install pip-tools nvidia-cuda-cuobjdump==13.5.37 nvidia-cuda-nvdisasm==13.5.37
install pip-cupti nvidia-cuda-cupti==13.0.85  # the kernel timeline's injection library (pack.sh)

SRC=$DIR/pip-cuda/nvidia/cu13
[ -x "$SRC/bin/nvcc" ] || { echo "toolkit.sh: no nvcc in $SRC/bin after the install" >&2; exit 1; }
rm -rf "$TK"
mkdir -p "$TK/bin" "$TK/lib"
ln -s "$SRC/include" "$TK/include"
ln -s "$SRC/nvvm" "$TK/nvvm"
ln -s lib "$TK/lib64"
# nvcc reads nvcc.profile next to itself and takes the toolkit's root from it: a copy of the
# binary with a profile naming this folder (the wheel's own profile points inside the wheel).
cp "$SRC/bin/nvcc" "$TK/bin/nvcc"
sed "s|^TOP *=.*|TOP              = $TK|" "$SRC/bin/nvcc.profile" > "$TK/bin/nvcc.profile"
for f in "$SRC"/bin/*; do
  name=$(basename "$f")
  [ "$name" = nvcc ] || [ "$name" = nvcc.profile ] || ln -s "$f" "$TK/bin/$name"
done
for f in "$SRC"/lib/*; do ln -s "$f" "$TK/lib/$(basename "$f")"; done
# The unversioned names the linker looks for.
for lib in cudart cublas cublasLt; do
  [ -e "$TK/lib/lib$lib.so" ] || ln -s "lib$lib.so.13" "$TK/lib/lib$lib.so"
done
for tool in cuobjdump nvdisasm; do
  found=$(find "$DIR/pip-tools" -path "*/bin/$tool" -type f | head -1)
  [ -n "$found" ] && ln -sf "$found" "$TK/bin/$tool"
done

"$TK/bin/nvcc" --version | tail -2
echo "CUDA_HOME=$TK"
echo "NCCL_HOME=$DIR/pip-nccl/nvidia/nccl"
