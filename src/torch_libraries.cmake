# LibTorch-based layers. Each is a static library; `deepspeed` (alias DeepSpeedCpp::deepspeed when installed)
# is what user programs link.

# comm: process group (c10d Gloo / NCCL), rendezvous from the environment.
ds_library(ds_comm comm/dist_env.cpp comm/communicator.cpp comm/init.cpp comm/gloo_backend.cpp
           comm/nccl_backend.cpp comm/comms_logger.cpp)
target_link_libraries(ds_comm PUBLIC ds_util ds_config torch)
target_include_directories(ds_comm PRIVATE ${DS_GLOO_INCLUDE})
find_path(DS_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include
          ${DS_TORCH_PREFIX}/../../nvidia/nccl/include)
if(DS_NCCL_INCLUDE AND DS_TORCH_HAS_CUDA)
  target_compile_definitions(ds_comm PRIVATE DS_WITH_NCCL)
  target_include_directories(ds_comm PRIVATE ${DS_NCCL_INCLUDE})
  message(STATUS "deepspeed.cpp: NCCL backend enabled (${DS_NCCL_INCLUDE})")
else()
  message(STATUS "deepspeed.cpp: no nccl.h found; GPU ranks will report that NCCL is missing")
endif()

# checkpoint: DeepSpeed's file layout, crash-safe writes, and the sections stateful parts save into. Below zero:
# the ZeRO layouts save themselves.
ds_library(ds_checkpoint checkpoint/files.cpp checkpoint/state.cpp)
target_link_libraries(ds_checkpoint PUBLIC ds_util torch)

# zero: the ZeRO layouts (strategies) and their parts — flat buffers, partition and bucket arithmetic, gradient
# reduction, master weights, storage placement, partitioned parameters, units — and re-cutting and
# consolidating their checkpoints.
ds_library(ds_zero zero/bucket_plan.cpp zero/flat_group.cpp zero/grad_reducer.cpp zero/grad_buffers.cpp zero/grad_landing.cpp zero/grad_convert.cpp zero/naive_all_reduce.cpp zero/unit.cpp zero/find_units.cpp
           zero/partitioned_params.cpp zero/storage.cpp zero/init.cpp zero/placement.cpp zero/master_weights.cpp
           zero/strategy.cpp zero/strategy_factory.cpp zero/replicated.cpp zero/sharded_state.cpp zero/step_speculation.cpp zero/write_back.cpp zero/step_behind_forward.cpp zero/sharded.cpp
           zero/partitioned.cpp zero/host_memory.cpp zero/serial_worker.cpp zero/landing_budget.cpp zero/memory_estimate.cpp zero/activation_estimate.cpp zero/memory_trace.cpp
           zero/shard_checkpoint.cpp zero/reshard.cpp zero/consolidate.cpp)
target_link_libraries(ds_zero PUBLIC ds_comm ds_config ds_checkpoint)
# ZeRO-Offload pins its host buffers with the CUDA runtime (the one LibTorch loads) where LibTorch has CUDA.
if(DS_TORCH_HAS_CUDA)
  find_package(CUDAToolkit QUIET)
  if(TARGET CUDA::cudart)
    target_link_libraries(ds_zero PRIVATE CUDA::cudart)
    set_source_files_properties(zero/host_memory.cpp PROPERTIES COMPILE_DEFINITIONS DS_WITH_CUDA_RUNTIME)
  endif()
endif()

# optim: optimizers, clipping (the LR schedules are ds_schedules, torch-free).
ds_library(ds_optim optim/optimizer.cpp optim/adam.cpp optim/adam_device.cpp optim/sgd.cpp optim/clip.cpp
           optim/multi_tensor_norm.cpp optim/state_dict.cpp optim/lamb.cpp optim/adagrad_lion.cpp optim/adagrad_lion_kernels.cpp optim/cpu_adam.cpp optim/cpu_adam_kernel.cpp optim/cpu_adam_scalar.cpp
           optim/cpu_adam_avx2.cpp optim/cpu_adam_avx512.cpp)
target_link_libraries(ds_optim PUBLIC ds_config ds_schedules torch)
# CPU Adam: the ISA files pick their instruction set with `#pragma GCC target`, so no -march here. Contraction
# is off so the scalar reference keeps the SIMD paths' exact operation order (tests compare bitwise).
set_source_files_properties(optim/cpu_adam_scalar.cpp optim/cpu_adam_avx2.cpp optim/cpu_adam_avx512.cpp
                            PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
# OpenMP for the CPU Adam tiles. GCC's -fopenmp links libgomp.so.1 by soname; LibTorch's wheel ships its own
# libgomp.so.1 beside libtorch_cpu.so, and since our binaries' RUNPATH names that directory the loader maps
# that one copy for both (bench/cpu_adam_bench prints the libgomp paths it finds mapped, to check).
find_package(OpenMP REQUIRED COMPONENTS CXX)
target_link_libraries(ds_optim PRIVATE OpenMP::OpenMP_CXX)

# precision: fp16 loss scaling (pure arithmetic).
ds_library(ds_precision precision/loss_scaler.cpp)
target_link_libraries(ds_precision PUBLIC ds_config)

# profiling: the flops profiler (counts ATen operators through a RecordFunction callback). Beside precision:
# the engine may use it, it uses nothing above config.
ds_library(ds_profiling profiling/flops_profiler.cpp profiling/flop_formulas.cpp profiling/report.cpp)
target_link_libraries(ds_profiling PUBLIC ds_config torch)

# data: sampler, datasets, loader.
file(GLOB DS_DATA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/data/*.cpp)
ds_library(ds_data ${DS_DATA_SOURCES})
target_link_libraries(ds_data PUBLIC ds_util torch)

# engine: initialize(), Engine, timers.
ds_library(ds_engine engine/arguments.cpp engine/activation_checkpointing.cpp engine/engine.cpp engine/initialize.cpp
           engine/module_sync.cpp engine/timers.cpp engine/checkpoint.cpp engine/checkpoint_parts.cpp
           engine/gathered_parameters.cpp engine/training_monitor.cpp engine/step_report.cpp
           engine/flops_profile_step.cpp)
target_link_libraries(ds_engine PUBLIC ds_optim ds_precision ds_checkpoint ds_zero ds_data ds_comm ds_monitor
                      ds_profiling CLI11::CLI11)
execute_process(COMMAND git rev-parse --short HEAD WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                OUTPUT_VARIABLE DS_GIT_HASH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
execute_process(COMMAND git rev-parse --abbrev-ref HEAD WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                OUTPUT_VARIABLE DS_GIT_BRANCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
set_source_files_properties(engine/initialize.cpp PROPERTIES COMPILE_DEFINITIONS
  "DS_VERSION=\"${PROJECT_VERSION}\";DS_GIT_HASH=\"${DS_GIT_HASH}\";DS_GIT_BRANCH=\"${DS_GIT_BRANCH}\"")

# ops: kernels for models (fused cross-entropy, residual-add + LayerNorm, bias + GELU) and the attention-backend
# switch. The CUDA kernels are built when a CUDA compiler and LibTorch with CUDA are both there; otherwise ops
# fall back to their LibTorch reference.
ds_library(ds_ops ops/cross_entropy.cpp ops/add_layer_norm.cpp ops/bias_gelu.cpp ops/linear.cpp ops/linear_gemms.cpp
           ops/linear_node.cpp ops/linear_chunks.cpp ops/cublas_lt.cpp ops/lt_matmul.cpp ops/lt_bits.cpp ops/gelu_mlp.cpp
           ops/attention.cpp ops/qkv_attention.cpp ops/cudnn_sdpa.cpp)
target_link_libraries(ds_ops PUBLIC ds_util torch)
option(DS_WITH_CUDA_OPS "Build the CUDA kernels of ops/ when a CUDA compiler is found" ON)
include(CheckLanguage)
if(DS_WITH_CUDA_OPS)
  check_language(CUDA)
endif()
if(DS_WITH_CUDA_OPS AND CMAKE_CUDA_COMPILER AND DS_TORCH_HAS_CUDA)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  # A100 and H100; set DS_CUDA_ARCHITECTURES for other cards.
  set(DS_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures of deepspeed.cpp's own kernels")
  # ds_cuda_kernels(name owner sources...): a static library of our kernels, linked into `owner`, against the
  # shared CUDA runtime (the one LibTorch uses, so streams and errors are the process's own).
  function(ds_cuda_kernels name owner)
    add_library(${name} STATIC ${ARGN})
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
    set_target_properties(${name} PROPERTIES CUDA_ARCHITECTURES "${DS_CUDA_ARCHITECTURES}"
                                             POSITION_INDEPENDENT_CODE ON CUDA_RUNTIME_LIBRARY Shared)
    target_link_libraries(${name} PUBLIC CUDA::cudart)
    target_link_libraries(${owner} PRIVATE ${name})
  endfunction()
  ds_cuda_kernels(ds_ops_cuda ds_ops ops/cross_entropy_kernel.cu ops/add_layer_norm_kernel.cu
                  ops/add_layer_norm_backward_kernel.cu ops/add_layer_norm_split_kernel.cu
                  ops/add_layer_norm_wide_kernel.cu ops/bias_gelu_kernel.cu ops/linear_chunks_kernel.cu
                  ops/bits_hash_kernel.cu)
  set(DS_CUDA_OPS ON PARENT_SCOPE)
  # For the CPU tests of the kernels' host-and-device arithmetic (tests/unit: CUDA's headers, no runtime).
  set(DS_CUDA_INCLUDE_DIRS ${CUDAToolkit_INCLUDE_DIRS} PARENT_SCOPE)
  target_compile_definitions(ds_ops PRIVATE DS_WITH_CUDA_OPS)
  # cuBLASLt, for ops::linear's bias gradient in the weight GEMM's epilogue (DS_LINEAR_EPILOGUE=1). Not linked:
  # its entry points are taken at run time from the copy LibTorch loaded (a copy of our own, same soname, could
  # be mapped in LibTorch's place). Only its header is needed here: the nvidia-cublas wheel's beside LibTorch,
  # else the toolkit's. Neither: compiled out.
  get_filename_component(ds_torch_site "${TORCH_INSTALL_PREFIX}/.." ABSOLUTE)
  find_path(DS_CUBLASLT_INCLUDE cublasLt.h
            HINTS ${ds_torch_site}/nvidia/cu13/include ${ds_torch_site}/nvidia/cublas/include ${CUDAToolkit_INCLUDE_DIRS})
  if(DS_CUBLASLT_INCLUDE)
    target_link_libraries(ds_ops PRIVATE ${CMAKE_DL_LIBS})
    # The wheel's include directory holds CUDA's other headers too: only this file sees it.
    set_source_files_properties(ops/linear_gemms.cpp ops/cublas_lt.cpp ops/lt_matmul.cpp PROPERTIES COMPILE_DEFINITIONS
                                DS_WITH_CUBLASLT INCLUDE_DIRECTORIES ${DS_CUBLASLT_INCLUDE})
    # ops::gelu_mlp calls lt_matmul, lt_bits hashes its outputs (no cuBLASLt header needed).
    set_source_files_properties(ops/gelu_mlp.cpp ops/lt_bits.cpp PROPERTIES COMPILE_DEFINITIONS DS_WITH_CUBLASLT)
    message(STATUS "deepspeed.cpp: cuBLASLt epilogues for ops::linear (header in ${DS_CUBLASLT_INCLUDE})")
  endif()
  # cuDNN's graph API for ops::qkv_attention's backward: the header-only frontend (PyPI's nvidia-cudnn-frontend,
  # which scripts/setup.sh installs; .devdeps on the GPU machines) over the cudnn.h of LibTorch's cuDNN wheel.
  # Not linked: the frontend finds LibTorch's libcudnn in the process. Either header missing: compiled out, and
  # qkv_attention runs its reference.
  option(DS_CUDNN_FRONTEND "Build ops::qkv_attention's cuDNN graph-API backward where the headers are found" ON)
  find_path(DS_CUDNN_FRONTEND_INCLUDE cudnn_frontend.h HINTS ${DS_DEPS_DIR}/include ${ds_torch_site}/include
            NO_DEFAULT_PATH)
  find_path(DS_CUDNN_INCLUDE cudnn.h HINTS ${ds_torch_site}/nvidia/cudnn/include ${ds_torch_site}/nvidia/cu13/include
            NO_DEFAULT_PATH)
  if(DS_CUDNN_FRONTEND AND DS_CUDNN_FRONTEND_INCLUDE AND DS_CUDNN_INCLUDE)
    target_link_libraries(ds_ops PRIVATE ${CMAKE_DL_LIBS})
    # Those include directories hold other packages' headers too: only this file sees them.
    # As system headers: the frontend's own warnings are not ours.
    set_source_files_properties(ops/cudnn_sdpa.cpp PROPERTIES COMPILE_DEFINITIONS DS_WITH_CUDNN_FRONTEND
      COMPILE_OPTIONS "-isystem;${DS_CUDNN_FRONTEND_INCLUDE};-isystem;${DS_CUDNN_INCLUDE}")
    set_source_files_properties(ops/qkv_attention.cpp PROPERTIES COMPILE_DEFINITIONS DS_WITH_CUDNN_FRONTEND)
    message(STATUS "deepspeed.cpp: cuDNN's graph API for ops::qkv_attention (${DS_CUDNN_FRONTEND_INCLUDE})")
  else()
    message(STATUS "deepspeed.cpp: no cuDNN graph API (DS_CUDNN_FRONTEND off or headers missing); ops::qkv_attention runs its reference")
  endif()
  # The gradient norm's device kernels (summing in the host's order, for ZeRO-Offload's landing gradients; over a
  # whole gradient list in one pass) and the one-pass Adam over fp32 masters.
  ds_cuda_kernels(ds_optim_cuda ds_optim optim/squared_sum_kernel.cu optim/multi_tensor_norm_kernel.cu
                  optim/adam_master_kernel.cu)
  set_source_files_properties(optim/clip.cpp optim/multi_tensor_norm.cpp PROPERTIES COMPILE_DEFINITIONS DS_WITH_CUDA_NORM)
  set_source_files_properties(optim/adam_device.cpp PROPERTIES COMPILE_DEFINITIONS DS_WITH_CUDA_ADAM)
  # The 16-bit gradients' hand-over into fp32 accumulation buffers.
  ds_cuda_kernels(ds_zero_cuda ds_zero zero/grad_convert_kernel.cu)
  set_source_files_properties(zero/grad_convert.cpp PROPERTIES COMPILE_DEFINITIONS DS_WITH_CUDA_CONVERT)
  message(STATUS "deepspeed.cpp: CUDA kernels enabled (${DS_CUDA_ARCHITECTURES})")
endif()

add_library(deepspeed INTERFACE)
target_link_libraries(deepspeed INTERFACE ds_engine ds_ops ds_profiling)
