#!/usr/bin/env bash
# Compiles the whole GPU tree (src/backend/gpu and tests/gpu) for every GPU target CI checks, warnings as errors:
#   build-nvcc/: nvcc for sm_80 and sm_90            (needs nvcc: PATH, $CUDA_PATH or /usr/local/cuda/bin)
#   build-hip/:  Debian's hipcc for gfx90a and gfx1030 (one 64-wide and one 32-wide wavefront target)
# Only the object files of those two folders are built: the rest of the project (compiled and tested by the main
# build) is configured but not compiled again, and nothing is linked here. The main build links and runs the GPU
# test (it skips without a GPU); scripts/gpu-test.sh runs it on a real GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
gpu_dirs='^(src/backend/gpu|tests/gpu)/CMakeFiles/[^:]*\.o:'
status=0

loud_skip() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
  printf '!!! SKIPPED: %s\n' "$*"
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
}

# Builds every object file of the GPU folders in build dir $1; fails when there are none.
build_gpu_objects() {
  local dir=$1
  local objects
  objects=$(ninja -C "$dir" -t targets all | grep -oE "$gpu_dirs" | tr -d ':' | sort -u)
  if [ -z "$objects" ]; then
    echo "gpu-compile: no GPU object files in $dir (is ROCMFORGE_GPU_BACKEND off there?)" >&2
    return 1
  fi
  echo "gpu-compile: $(echo "$objects" | wc -l) objects in $dir"
  # shellcheck disable=SC2086
  ninja -C "$dir" -j "$jobs" $objects
}

nvcc=""
if command -v nvcc >/dev/null 2>&1; then
  nvcc=$(command -v nvcc)
elif [ -n "${CUDA_PATH:-}" ] && [ -x "$CUDA_PATH/bin/nvcc" ]; then
  nvcc="$CUDA_PATH/bin/nvcc"
elif [ -x /usr/local/cuda/bin/nvcc ]; then
  nvcc=/usr/local/cuda/bin/nvcc
fi

# The release build of scripts/test.sh (ROCMFORGE_GPU=auto) already compiles the GPU tree with nvcc when it finds
# one. When that build directory ($ROCMFORGE_NVCC_BUILD, default build/) is a -Werror CUDA build for exactly sm_80
# and sm_90, its objects are the ones this step would make: build (i.e. check) them there instead of compiling the
# whole tree a second time in build-nvcc/.
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$2/CMakeCache.txt" 2>/dev/null; }
reuse=${ROCMFORGE_NVCC_BUILD:-build}
if [ -n "$nvcc" ]; then
  echo "gpu-compile: nvcc ($nvcc) for sm_80, sm_90"
  if [ "$(cache_value ROCMFORGE_GPU_BACKEND_CHOSEN "$reuse")" = cuda ] && [ "$(cache_value CMAKE_CUDA_ARCHITECTURES "$reuse")" = "80;90" ] &&
     [ "$(cache_value ROCMFORGE_WERROR "$reuse")" = ON ]; then
    echo "gpu-compile: $reuse/ is a -Werror CUDA build for sm_80;90: checking its GPU objects"
    build_gpu_objects "$reuse" || status=1
  else
    cmake -S . -B build-nvcc -G Ninja -DCMAKE_BUILD_TYPE=Release -DROCMFORGE_WERROR=ON -DROCMFORGE_GPU=cuda \
      -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="80;90" >/dev/null
    build_gpu_objects build-nvcc || status=1
  fi
else
  loud_skip "nvcc not found: the CUDA compile of the GPU tree was NOT checked"
fi

if command -v hipcc >/dev/null 2>&1; then
  echo "gpu-compile: hipcc ($(command -v hipcc)) for gfx90a, gfx1030"
  CXX=hipcc cmake -S . -B build-hip -G Ninja -DCMAKE_BUILD_TYPE=Release -DROCMFORGE_WERROR=ON -DROCMFORGE_GPU=hip \
    -DROCMFORGE_HIP_ARCHITECTURES="gfx90a;gfx1030" >/dev/null
  build_gpu_objects build-hip || status=1
else
  loud_skip "hipcc not found (scripts/install-deps.sh installs it): the HIP compile of the GPU tree was NOT checked"
fi

if [ "$status" -ne 0 ]; then
  echo "gpu-compile: FAILED" >&2
  exit 1
fi
echo "gpu-compile: OK"
