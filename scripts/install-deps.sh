#!/usr/bin/env bash
# Installs the Debian 12 packages ROCmForge needs to build, test and compile its GPU code.
# Idempotent; run as root (or through sudo). Everything comes from Debian's own archive.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev llvm               # libFuzzer + ASan/UBSan builds
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
  libpcre2-dev                                 # Unicode-aware regexes for the pre-tokenizers
  libicu-dev                                   # Unicode character categories for the tokenizers
  hipcc libamdhip64-dev rocm-device-libs      # AMD GPU build (compile-only without an AMD GPU)
  curl                                         # raw SSE checks in the server tests
  g++-aarch64-linux-gnu qemu-user              # NEON kernels: cross-compile + run the SIMD parity test
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
