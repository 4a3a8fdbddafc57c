#!/usr/bin/env bash
# First command of the README: installs the Debian packages, builds, and runs the main job on the
# built-in model (models/default.gguf) unless a model is given: scripts/setup.sh [MODEL.gguf]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
exec build/bin/rocmforge run "${@}"
