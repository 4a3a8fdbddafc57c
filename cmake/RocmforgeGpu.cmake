# GPU backend selection, included from the top CMakeLists after ROCMFORGE_GPU (auto|cuda|hip|off) is set.
#
# Result for the rest of the build: ROCMFORGE_GPU_BACKEND = cuda | hip | off.
#   cuda: CUDA is enabled as a language (nvcc), .cu files compile as CUDA for CMAKE_CUDA_ARCHITECTURES
#         (default "80;90"), the runtime is linked statically so binaries start on machines without a driver.
#   hip:  the C++ compiler itself must be a HIP-capable clang (CXX=hipcc, or clang++ with ROCm); .cu files are
#         compiled as C++ with `-x hip --offload-arch=...` for each of ROCMFORGE_HIP_ARCHITECTURES (default
#         "gfx90a;gfx1030": one 64-wide and one 32-wide wavefront target). CMake's LANGUAGE HIP is not used: it
#         does not find Debian's ROCm 5.2 layout.
#   auto: cuda when nvcc is found (CMAKE_CUDA_COMPILER, PATH, $CUDA_PATH, /usr/local/cuda), otherwise off.
#
# Helpers for the GPU folders:
#   rf_gpu_sources(a.cu b.cpp ...)   marks GPU sources so that they compile for the chosen backend
#   rf_gpu_target_defaults(target)   warning flags (as errors) for the CUDA compile of a target's .cu files

set(ROCMFORGE_HIP_ARCHITECTURES "gfx90a;gfx1030" CACHE STRING "AMD offload targets for ROCMFORGE_GPU=hip")

set(_rf_gpu_request "${ROCMFORGE_GPU}")
string(TOLOWER "${_rf_gpu_request}" _rf_gpu_request)
if(NOT _rf_gpu_request MATCHES "^(auto|cuda|hip|off)$")
  message(FATAL_ERROR "ROCMFORGE_GPU must be one of auto|cuda|hip|off, got '${ROCMFORGE_GPU}'")
endif()

# Finds nvcc; sets _rf_nvcc to its path or to an empty string.
function(_rf_find_nvcc)
  if(CMAKE_CUDA_COMPILER)
    set(_rf_nvcc "${CMAKE_CUDA_COMPILER}" PARENT_SCOPE)
    return()
  endif()
  find_program(ROCMFORGE_NVCC_EXECUTABLE nvcc HINTS ENV CUDA_PATH ENV CUDA_HOME PATH_SUFFIXES bin
               PATHS /usr/local/cuda/bin /usr/local/cuda)
  if(ROCMFORGE_NVCC_EXECUTABLE)
    set(_rf_nvcc "${ROCMFORGE_NVCC_EXECUTABLE}" PARENT_SCOPE)
  else()
    set(_rf_nvcc "" PARENT_SCOPE)
  endif()
endfunction()

set(ROCMFORGE_GPU_BACKEND "off")
if(_rf_gpu_request STREQUAL "auto" OR _rf_gpu_request STREQUAL "cuda")
  _rf_find_nvcc()
  if(_rf_nvcc)
    set(ROCMFORGE_GPU_BACKEND "cuda")
  elseif(_rf_gpu_request STREQUAL "cuda")
    message(FATAL_ERROR "ROCMFORGE_GPU=cuda but nvcc was not found (looked in PATH, $CUDA_PATH, /usr/local/cuda/bin); "
                        "set CMAKE_CUDA_COMPILER=/path/to/nvcc")
  endif()
elseif(_rf_gpu_request STREQUAL "hip")
  set(ROCMFORGE_GPU_BACKEND "hip")
endif()

# Recorded in the cache for scripts/gpu-compile.sh, which reuses a release build's CUDA objects.
set(ROCMFORGE_GPU_BACKEND_CHOSEN "${ROCMFORGE_GPU_BACKEND}" CACHE INTERNAL "GPU backend this build compiles")

if(ROCMFORGE_GPU_BACKEND STREQUAL "cuda")
  set(CMAKE_CUDA_COMPILER "${_rf_nvcc}")
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures (sm_XX numbers)")
  endif()
  # Host code of .cu files goes through the same compiler as the rest of the project when it is GCC.
  if(NOT DEFINED CMAKE_CUDA_HOST_COMPILER AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    set(CMAKE_CUDA_HOST_COMPILER "${CMAKE_CXX_COMPILER}")
  endif()
  enable_language(CUDA)
  # .cu files follow CXX_STANDARD (20). CMake 3.25 does not know nvcc 12+'s C++20 flag: tell it.
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  # cudart_static loads the driver at run time: without one, calls return cudaErrorInsufficientDriver instead of
  # the program failing to start.
  set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
  find_package(CUDAToolkit REQUIRED)
  set(ROCMFORGE_GPU_RUNTIME_TARGET CUDA::cudart_static)
  message(STATUS "rocmforge GPU backend: CUDA (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, sm ${CMAKE_CUDA_ARCHITECTURES})")
elseif(ROCMFORGE_GPU_BACKEND STREQUAL "hip")
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "ROCMFORGE_GPU=hip needs a HIP-capable clang as the C++ compiler: configure a separate "
                        "build directory with CXX=hipcc (got ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER})")
  endif()
  find_library(ROCMFORGE_AMDHIP64_LIBRARY amdhip64 HINTS ENV ROCM_PATH PATH_SUFFIXES lib lib64
               PATHS /opt/rocm/lib)
  if(NOT ROCMFORGE_AMDHIP64_LIBRARY)
    message(FATAL_ERROR "ROCMFORGE_GPU=hip: libamdhip64 not found (Debian: apt-get install libamdhip64-dev)")
  endif()
  set(ROCMFORGE_GPU_RUNTIME_TARGET "${ROCMFORGE_AMDHIP64_LIBRARY}")
  # hipcc compiles every .cpp as HIP (for the GPUs it finds, or none) unless the language is named: name it, so
  # host code stays host code (clang 15's HIP device pass also crashes on some GoogleTest code). GPU sources
  # switch to HIP per file (rf_gpu_sources). Naming the targets at link time keeps hipcc from probing for GPUs.
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-xc++>)
  set(ROCMFORGE_HIP_COMPILE_OPTIONS -xhip)
  foreach(arch IN LISTS ROCMFORGE_HIP_ARCHITECTURES)
    list(APPEND ROCMFORGE_HIP_COMPILE_OPTIONS --offload-arch=${arch})
    add_link_options(--offload-arch=${arch})
  endforeach()
  # hipcc runs rocm_agent_enumerator for every command without an --offload-arch (the host-only ones): naming the
  # targets in its environment skips that probe (and its traceback on machines without an AMD GPU).
  get_filename_component(_rf_cxx_name "${CMAKE_CXX_COMPILER}" NAME)
  if(_rf_cxx_name MATCHES "^hipcc")
    string(REPLACE ";" "," _rf_hip_targets "${ROCMFORGE_HIP_ARCHITECTURES}")
    list(PREPEND CMAKE_CXX_COMPILER_LAUNCHER env HCC_AMDGPU_TARGET=${_rf_hip_targets})
    list(PREPEND CMAKE_CXX_LINKER_LAUNCHER env HCC_AMDGPU_TARGET=${_rf_hip_targets})
  endif()
  message(STATUS "rocmforge GPU backend: HIP (${CMAKE_CXX_COMPILER}, ${ROCMFORGE_HIP_ARCHITECTURES})")
else()
  message(STATUS "rocmforge GPU backend: off (ROCMFORGE_GPU=${ROCMFORGE_GPU})")
endif()

# Marks sources (paths relative to the calling folder) as device code of the chosen backend: .cu files compile as
# CUDA under nvcc by their extension; under HIP the listed files compile as HIP for ROCMFORGE_HIP_ARCHITECTURES.
# Host-only .cpp files that call the runtime through compat.h need no marking.
function(rf_gpu_sources)
  if(ROCMFORGE_GPU_BACKEND STREQUAL "hip")
    set_source_files_properties(${ARGN} DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR} PROPERTIES
      LANGUAGE CXX COMPILE_OPTIONS "${ROCMFORGE_HIP_COMPILE_OPTIONS}")
  endif()
endfunction()

# Warnings as errors for the device-compiler side of a target (the CXX side comes from rf_target_defaults).
# -Wpedantic is left out for nvcc: its generated host stubs use GCC line-directive extensions.
function(rf_gpu_target_defaults target)
  if(ROCMFORGE_GPU_BACKEND STREQUAL "cuda")
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wshadow,-Wno-missing-field-initializers>)
    if(ROCMFORGE_WERROR)
      target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--Werror=all-warnings -Xcompiler=-Werror>)
    endif()
  endif()
endfunction()
