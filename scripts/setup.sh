#!/usr/bin/env bash
# First command of the README: installs the Debian packages, builds, and runs the main job: text generation on
# the built-in model (models/default.gguf) unless a model is given.
#   scripts/setup.sh [MODEL.gguf [PROMPT]]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
model=${1:-models/default.gguf}
prompt=${2:-Love is}
echo "rocmforge generate -m $model -p \"$prompt\" -n 64"
exec build/bin/rocmforge generate -m "$model" -p "$prompt" -n 64
