#!/bin/bash
# Cross-compiles the SIMD parity test (tests/backend/simd_kernels_test.cpp) for aarch64, so it checks the NEON
# table against the scalar oracle, and runs it under qemu-user. Needs g++-aarch64-linux-gnu and qemu-user
# (scripts/install-deps.sh); gtest is compiled from Debian's /usr/src/googletest. Objects go to $OUT_DIR.
set -e
OUT_DIR=${OUT_DIR:-/tmp/rocmforge-aarch64}
mkdir -p "$OUT_DIR"
cd "$(dirname "$0")/.."
G=/usr/src/googletest/googletest
if [ ! -f "$OUT_DIR/gtest.o" ]; then
  aarch64-linux-gnu-g++ -O1 -std=c++20 -I$G/include -I$G -c $G/src/gtest-all.cc -o "$OUT_DIR/gtest.o"
  aarch64-linux-gnu-g++ -O1 -std=c++20 -I$G/include -c $G/src/gtest_main.cc -o "$OUT_DIR/gtest_main.o"
fi
SRCS="tests/backend/simd_kernels_test.cpp src/backend/cpu/act_quant_scalar.cpp src/backend/cpu/dot_legacy_scalar.cpp
 src/backend/cpu/dot_kquant_scalar.cpp src/backend/cpu/kernel_table.cpp src/backend/cpu/kernels_select.cpp
 src/backend/cpu/simd_neon.cpp src/core/check.cpp $(ls src/quant/*.cpp)"
objs=""
for s in $SRCS; do
  o=$OUT_DIR/$(echo $s | tr / _).o
  aarch64-linux-gnu-g++ -O2 -std=c++20 -Wall -Wextra -Wpedantic -Wshadow -Werror -Wno-missing-field-initializers \
    -DRF_HAVE_NEON_SIMD=1 -Isrc -Itests -I$G/include -c $s -o $o
  objs="$objs $o"
done
aarch64-linux-gnu-g++ -static -o $OUT_DIR/simd_kernels_test $objs $OUT_DIR/gtest.o $OUT_DIR/gtest_main.o -lpthread
qemu-aarch64 $OUT_DIR/simd_kernels_test
