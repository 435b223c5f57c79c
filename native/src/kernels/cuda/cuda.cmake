# The CUDA backend, included by native/CMakeLists.txt (and by test/gpu/CMakeLists.txt to build the
# kernel harness alone). In: GRPST_CUDA (AUTO: build where nvcc and cuBLASLt are found; ON: require
# them; OFF: skip), GRPST_NATIVE_DIR (the native/ folder). Out: GRPST_HAVE_CUDA and, when ON, the
# static library grpst_cuda (kernels + CUDA runtime pieces) and the executable grpst_gpu_harness.
# Code: sm_90a machine code (Hopper: H100/H200) plus compute_90 PTX that newer GPUs JIT-compile;
# GRPST_CUDA_GENCODE overrides it.
set(GRPST_HAVE_CUDA OFF)
if(NOT GRPST_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  set(grpst_cuda_missing "")
  if(NOT CMAKE_CUDA_COMPILER)
    set(grpst_cuda_missing "nvcc was not found (put it on PATH or set CUDACXX=/path/to/nvcc)")
  else()
    find_package(CUDAToolkit QUIET)
    if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cublasLt)
      set(grpst_cuda_missing "the CUDA toolkit's cuBLASLt was not found (set CUDAToolkit_ROOT to the toolkit folder)")
    endif()
  endif()
  if(grpst_cuda_missing)
    if(GRPST_CUDA STREQUAL "ON")
      message(FATAL_ERROR "GRPST_CUDA=ON but ${grpst_cuda_missing}")
    endif()
    message(STATUS "grpst: CUDA backend not built: ${grpst_cuda_missing}")
  else()
    set(GRPST_HAVE_CUDA ON)
    # Architectures are given as -gencode flags (sm_90a needs the "a" form CMake 3.18 lacks).
    set(CMAKE_CUDA_ARCHITECTURES OFF)
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(GRPST_CUDA_GENCODE "-gencode=arch=compute_90a,code=sm_90a;-gencode=arch=compute_90,code=compute_90"
        CACHE STRING "nvcc -gencode flags of the CUDA backend")
    message(STATUS "grpst: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, CUDA toolkit ${CUDAToolkit_VERSION})")

    set(grpst_cuda_dir ${GRPST_NATIVE_DIR}/src/kernels/cuda)
    add_library(grpst_cuda STATIC
      ${grpst_cuda_dir}/cuda_status.cu
      ${grpst_cuda_dir}/embedding.cu
      ${grpst_cuda_dir}/rmsnorm.cu
      ${grpst_cuda_dir}/swiglu.cu
      ${grpst_cuda_dir}/column_stats.cu
      ${grpst_cuda_dir}/awq_loss.cu
      ${grpst_cuda_dir}/qk_norm_rope.cu
      ${grpst_cuda_dir}/attention_decode.cu
      ${grpst_cuda_dir}/attention_decode_staged.cu
      ${grpst_cuda_dir}/attention_decode_mma.cu
      ${grpst_cuda_dir}/attention_prefill.cu
      ${grpst_cuda_dir}/attention_prefill_fa2.cu
      ${grpst_cuda_dir}/gemv_bf16.cu
      ${grpst_cuda_dir}/linear_skinny.cu
      ${grpst_cuda_dir}/linear_wo_tiled.cu
      ${grpst_cuda_dir}/linear_bf16_ws.cu
      ${grpst_cuda_dir}/linear_stream.cu
      ${grpst_cuda_dir}/decode_persistent.cu
      ${grpst_cuda_dir}/gemm_lt.cu
      ${grpst_cuda_dir}/quantize.cu
      ${grpst_cuda_dir}/quant_layout.cu
      ${grpst_cuda_dir}/sampling.cu
      ${grpst_cuda_dir}/top_logprobs.cu
      ${grpst_cuda_dir}/allreduce_oneshot.cu
      ${grpst_cuda_dir}/lora.cu
      ${grpst_cuda_dir}/moe_route.cu
      ${grpst_cuda_dir}/moe_experts.cu
      ${grpst_cuda_dir}/moe_experts_mma.cu
      ${grpst_cuda_dir}/moe_w8a8.cu
      ${GRPST_NATIVE_DIR}/src/runtime/cuda_forward.cu
      ${GRPST_NATIVE_DIR}/src/runtime/cuda_forward_moe.cu
    )
    set_target_properties(grpst_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_SEPARABLE_COMPILATION OFF)
    target_compile_options(grpst_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${GRPST_CUDA_GENCODE} -O3 -lineinfo -Xptxas=-warn-spills>)
    target_include_directories(grpst_cuda PUBLIC ${GRPST_NATIVE_DIR}/src ${GRPST_NATIVE_DIR}/include ${CUDAToolkit_INCLUDE_DIRS})
    target_link_libraries(grpst_cuda PUBLIC CUDA::cudart_static CUDA::cublasLt)
    # Kernels with sm_90a-only instructions (wgmma) launch only where that machine code was built.
    if(GRPST_CUDA_GENCODE MATCHES "sm_90a")
      target_compile_definitions(grpst_cuda PRIVATE GRPST_HAVE_SM90A=1)
    endif()

    # The CUDA ModelRunner (uses the runtime library grpst_core, defined by native/CMakeLists.txt).
    if(NOT GRPST_CUDA_HARNESS_ONLY)
      add_library(grpst_cuda_runner STATIC
        ${GRPST_NATIVE_DIR}/src/runtime/cuda_runner.cu
        ${GRPST_NATIVE_DIR}/src/runtime/cuda_lora.cu
        ${GRPST_NATIVE_DIR}/src/runtime/cuda_device_draws.cu
        ${GRPST_NATIVE_DIR}/src/runtime/cuda_calibration.cu
        ${GRPST_NATIVE_DIR}/src/runtime/awq_gpu.cu
        ${GRPST_NATIVE_DIR}/src/runtime/cuda_weights.cu
        ${GRPST_NATIVE_DIR}/src/runtime/cuda_tp.cu
        ${GRPST_NATIVE_DIR}/src/runtime/peer_allreduce.cu
      )
      set_target_properties(grpst_cuda_runner PROPERTIES POSITION_INDEPENDENT_CODE ON)
      target_compile_options(grpst_cuda_runner PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${GRPST_CUDA_GENCODE} -O3>)
      target_include_directories(grpst_cuda_runner PRIVATE ${GRPST_NATIVE_DIR}/include ${GRPST_NATIVE_DIR}/src)
      target_link_libraries(grpst_cuda_runner PUBLIC grpst_cuda grpst_core)
    endif()

    # Kernel parity tests and benchmarks (test/gpu/kernels): every kernel against its CPU twin.
    # Built by test/gpu/CMakeLists.txt (and by the native build with -DGRPST_GPU_HARNESS=ON).
    set(grpst_harness_dir ${GRPST_NATIVE_DIR}/../test/gpu/kernels)
    if(EXISTS ${grpst_harness_dir}/main.cu AND (GRPST_CUDA_HARNESS_ONLY OR GRPST_GPU_HARNESS))
      add_executable(grpst_gpu_harness
        ${grpst_harness_dir}/main.cu
        ${grpst_harness_dir}/harness.cu
        ${grpst_harness_dir}/reference.cpp
        ${grpst_harness_dir}/weights.cu
        ${grpst_harness_dir}/device_fill.cu
        ${grpst_harness_dir}/test_elementwise.cu
        ${grpst_harness_dir}/bench_moe.cu
        ${grpst_harness_dir}/paged_setup.cu
        ${grpst_harness_dir}/test_attention.cu
        ${grpst_harness_dir}/test_persistent.cu
        ${grpst_harness_dir}/test_linear.cu
        ${grpst_harness_dir}/test_linear_stream.cu
        ${grpst_harness_dir}/test_linear_bf16_ws.cu
        ${grpst_harness_dir}/test_sampling.cu
        # the device sampler's CPU twin, which test_sampling.cu holds the kernel to
        ${GRPST_NATIVE_DIR}/src/runtime/device_sampler_twin.cpp
        ${grpst_harness_dir}/test_allreduce.cu
        ${grpst_harness_dir}/test_lora.cu
        ${grpst_harness_dir}/reference_moe.cpp
        ${grpst_harness_dir}/test_moe.cu
        ${grpst_harness_dir}/test_moe_w8a8.cu
        ${grpst_harness_dir}/bench_kernels.cu
        ${grpst_harness_dir}/bench_rows.cu
        ${grpst_harness_dir}/bench_lt.cu
        ${grpst_harness_dir}/bench_ws_probe.cu
        ${grpst_harness_dir}/bench_model.cu
        ${grpst_harness_dir}/bench_persistent.cu
        ${grpst_harness_dir}/bench_steps.cu
        ${grpst_harness_dir}/fixture_model.cu
        ${grpst_harness_dir}/model_parity.cu
        ${grpst_harness_dir}/model_parity_tp.cu
        ${grpst_harness_dir}/profile.cu
        # the tensor-parallel hooks the runner uses, driven by model_parity_tp.cu's two-rank group
        ${GRPST_NATIVE_DIR}/src/runtime/cuda_tp.cu
      )
      target_include_directories(grpst_gpu_harness PRIVATE ${GRPST_NATIVE_DIR}/include)
      target_compile_options(grpst_gpu_harness PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${GRPST_CUDA_GENCODE} -O3>
                             $<$<COMPILE_LANGUAGE:CXX>:-O2>)
      target_link_libraries(grpst_gpu_harness PRIVATE grpst_cuda)
    endif()
  endif()
endif()
