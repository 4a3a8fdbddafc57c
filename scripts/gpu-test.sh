#!/usr/bin/env bash
# Everything to run on the lent GPU machine in one call (see ../shared/device/README.md): unpacks the Debian
# packages carried in .deps/, configures for sm_90 (override: ROCMFORGE_CUDA_ARCH), builds the GPU tests and
# runs them with ROCMFORGE_REQUIRE_GPU=1, so that a missing GPU fails instead of skipping. Set
# ROCMFORGE_GPU_SANITIZE=1 to also run them under compute-sanitizer (memcheck), ROCMFORGE_GPU_BENCH=1 to also
# build and run the matmul micro-benchmark (gpu_matvec_bench) afterwards. XML results go to $OUT when set.
#   run(carry=[".deps"], command="bash scripts/gpu-test.sh")
# .deps/ (git-ignored) is filled once per checkout, here: the shared debs plus the tokenizer's ICU and PCRE2,
# which the project's configure step needs and the device image lacks:
#   mkdir -p .deps && cp ../shared/device/debs/*.deb .deps/ && (cd .deps && apt-get download libicu-dev libicu72 \
#     libpcre2-dev libpcre2-32-0 libpcre2-8-0 libpcre2-16-0 libpcre2-posix3)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -d .deps ] && ls .deps/*.deb >/dev/null 2>&1; then
  mkdir -p /opt/deps
  for f in .deps/*.deb; do dpkg -x "$f" /opt/deps; done
  export CMAKE_PREFIX_PATH=/opt/deps/usr PKG_CONFIG_PATH=/opt/deps/usr/lib/x86_64-linux-gnu/pkgconfig
  export PKG_CONFIG_SYSROOT_DIR=/opt/deps LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"

# Golden and hybrid tests read ../shared; on the device it comes as the carried .gpu-models/data.tar.gz. Without
# it those tests SKIP (and their binaries still exit 0): the summary says so loudly.
if [ -s .gpu-models/data.tar.gz ] && [ -z "${ROCMFORGE_SHARED:-}" ]; then
  mkdir -p /tmp/rf-shared && tar xzf .gpu-models/data.tar.gz -C /tmp/rf-shared
  export ROCMFORGE_SHARED=/tmp/rf-shared
fi
shared_note=""
if [ -z "${ROCMFORGE_SHARED:-}" ] && [ ! -d ../shared ]; then
  shared_note="!!! NO SHARED DATA: the golden and hybrid tests SKIPPED (carry .gpu-models, see scripts/gpu-all.sh)"
fi

build=${ROCMFORGE_GPU_BUILD_DIR:-build-device}
t0=$(date +%s)
# Warnings stay warnings here: the device has a newer GCC than Debian 12 (CI enforces -Werror there).
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DROCMFORGE_GPU=cuda -DROCMFORGE_WERROR=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="${ROCMFORGE_CUDA_ARCH:-90}" >/dev/null
tests=$(ninja -C "$build" -t targets all | grep -oE '^gpu_[a-z0-9_]*test:' | tr -d ':' | sort -u)
[ -n "$tests" ] || { echo "gpu-test: no gpu_*test targets" >&2; exit 1; }
# shellcheck disable=SC2086
cmake --build "$build" -j "$(nproc)" --target $tests
echo "gpu-test: built $(echo $tests) in $(($(date +%s) - t0)) s"

export ROCMFORGE_REQUIRE_GPU=1
failed=0
summary=""
for t in $tests; do
  xml=()
  [ -n "${OUT:-}" ] && xml=(--gtest_output="xml:$OUT/$t.xml")
  if "$build/bin/$t" "${xml[@]}"; then summary+="PASS  $t"$'\n'; else summary+="FAIL  $t"$'\n'; failed=1; fi
  if [ "${ROCMFORGE_GPU_SANITIZE:-0}" = 1 ]; then
    if compute-sanitizer --tool memcheck --error-exitcode 3 "$build/bin/$t" --gtest_brief=1; then
      summary+="PASS  $t (compute-sanitizer memcheck)"$'\n'
    else
      summary+="FAIL  $t (compute-sanitizer memcheck)"$'\n'
      failed=1
    fi
  fi
done
if [ "${ROCMFORGE_GPU_BENCH:-0}" = 1 ]; then
  cmake --build "$build" -j "$(nproc)" --target gpu_matvec_bench
  "$build/bin/gpu_matvec_bench" | tee ${OUT:+"$OUT/matvec_bench.txt"} || failed=1
fi
printf '\n==== GPU test summary ====\n%s' "$summary"
[ -n "$shared_note" ] && printf '%s\n' "$shared_note"
exit "$failed"
