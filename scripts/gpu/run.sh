#!/usr/bin/env bash
# Runs on the GPU machine, in the repository root, after scripts/gpu/pack.sh filled .carry/:
#   bash scripts/gpu/run.sh STAGE...      stages: kernels baseline serve (default: all three)
# kernels   the CUDA kernel harness: parity tests against the CPU twins, whole-model parity on
#           the tiny fixtures, then the kernel and whole-model benchmarks (Qwen3-8B shape)
# baseline  Hugging Face transformers generate at batch 1 and 64 on the same shape
# serve     the native addon built with CUDA: GPU model parity tests and bench:gpu
# Everything it reports goes to $OUT (at most 8 files); the last lines printed are a summary.
set -uo pipefail
OUT=${OUT:-/tmp/grpst-gpu-out}
mkdir -p "$OUT"
ROOT=$(pwd)
CARRY=$ROOT/.carry
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(kernels baseline serve)
LOG=$OUT/run.log
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1
SUMMARY=()
t_start=$(date +%s)
stamp() { echo "[$(($(date +%s) - t_start))s] $*"; }

stamp "machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null)"
stamp "nvcc: $(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null) cores: $(nproc)"

# The CUDA libraries the prebuilt binaries link dynamically (cuBLASLt).
cuda_libs() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -e "$d/libcublasLt.so.13" ] && { echo "$d"; return; }
  done
  python3 - <<'PY' 2>/dev/null
import glob, os, site
for base in site.getsitepackages():
    for p in glob.glob(os.path.join(base, "nvidia", "**", "libcublasLt.so.13"), recursive=True):
        print(os.path.dirname(p)); raise SystemExit
PY
}
CUDA_LIBDIR=$(cuda_libs | head -1)
export LD_LIBRARY_PATH=${CUDA_LIBDIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
stamp "cuBLASLt from: ${CUDA_LIBDIR:-not found}"
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)

harness_bin() {
  local bin=$CARRY/bin/grpst_gpu_harness
  if [ -x "$bin" ]; then
    "$bin" >/dev/null 2>&1; [ $? -eq 2 ] && { echo "$bin"; return; }
  fi
  stamp "building the harness here (no usable prebuilt binary)" >&2
  CUDACXX=$NVCC cmake -S test/gpu -B /tmp/harness-build -DGRPST_CUDA=ON >/tmp/harness-cmake.log 2>&1 &&
    cmake --build /tmp/harness-build -j "$(nproc)" >>/tmp/harness-cmake.log 2>&1 ||
    { tail -30 /tmp/harness-cmake.log >&2; return 1; }
  echo /tmp/harness-build/grpst_gpu_harness
}

for stage in "${STAGES[@]}"; do
  case $stage in
    kernels)
      H=$(harness_bin) || { SUMMARY+=("kernels: harness build FAILED"); continue; }
      stamp "kernel parity tests"
      timeout "${T_TESTS:-150}" "$H" test --json "$OUT/kernel-tests.json" > "$OUT/kernel-tests.log" 2>&1
      rc=$?; tail -4 "$OUT/kernel-tests.log"; grep -E "FAIL" "$OUT/kernel-tests.log" | head -40
      SUMMARY+=("kernel tests: exit $rc, $(tail -1 "$OUT/kernel-tests.log")")
      stamp "model parity (tiny fixtures)"
      timeout "${T_PARITY:-60}" "$H" parity "$CARRY/fixtures" > "$OUT/model-parity.log" 2>&1
      rc=$?; grep -E "parity" "$OUT/model-parity.log" | tail -20
      SUMMARY+=("model parity: exit $rc, $(tail -1 "$OUT/model-parity.log")")
      stamp "benchmarks"
      timeout "${T_BENCH:-200}" "$H" bench "${BENCH_FORMATS:-bf16,int8_wo,int4_awq,int4_awq:head,fp8,fp8:head,int8_sq}" "${BENCH_PROMPTS:-1024,8192,32768}" \
        --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1
      rc=$?; SUMMARY+=("bench: exit $rc")
      grep -E "^\s*\[(ceiling|decode|prefill|attention)\]" "$OUT/bench.log"
      ;;
    baseline)
      stamp "transformers baseline"
      timeout "${T_BASELINE:-150}" python3 scripts/gpu/transformers_baseline.py "$OUT/transformers.json" ${SAVE_CHECKPOINT:+--save-dir "$SAVE_CHECKPOINT"} \
        > "$OUT/transformers.log" 2>&1
      rc=$?; tail -3 "$OUT/transformers.log"
      SUMMARY+=("transformers: exit $rc")
      ;;
    serve)
      if [ -x scripts/gpu/serve.sh ]; then bash scripts/gpu/serve.sh; SUMMARY+=("serve: exit $?"); else SUMMARY+=("serve: not available"); fi
      ;;
    *) echo "unknown stage $stage" ;;
  esac
done
stamp "done"
printf '%s\n' "${SUMMARY[@]}"
