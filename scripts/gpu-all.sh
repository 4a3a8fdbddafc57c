#!/usr/bin/env bash
# One device call for the whole GPU check: the GPU tests (scripts/gpu-test.sh, golden data from the carried
# .gpu-models/data.tar.gz when present), then `rocmforge` itself: `generate --device gpu --dump-logits` on every
# golden model against llama.cpp's logits (nRMSE and argmax per prompt position, golden README tolerances), then
# bench/gpu.sh (synth 7B/8B models made on the device). Logs go to $OUT.
#   (prepare the carry once per checkout: bash scripts/gpu-carry.sh)
#   run(carry=[".deps", ".gpu-models"], command="COMMIT=<sha> bash scripts/gpu-all.sh")
# Env: SKIP_TESTS=1, SKIP_GOLDEN=1, SKIP_BENCH=1 leave a part out; MODELS etc. pass through to bench/gpu.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/rocmforge-gpu-out}
mkdir -p "$out"
status=0

if [ -s .gpu-models/data.tar.gz ] && [ -z "${ROCMFORGE_SHARED:-}" ]; then
  mkdir -p /tmp/rf-shared && tar xzf .gpu-models/data.tar.gz -C /tmp/rf-shared
  export ROCMFORGE_SHARED=/tmp/rf-shared
fi
if [ -d .deps ]; then
  mkdir -p /opt/deps
  for f in .deps/*.deb; do dpkg -x "$f" /opt/deps; done
  export CMAKE_PREFIX_PATH=/opt/deps/usr PKG_CONFIG_PATH=/opt/deps/usr/lib/x86_64-linux-gnu/pkgconfig
  export PKG_CONFIG_SYSROOT_DIR=/opt/deps LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
build=${ROCMFORGE_GPU_BUILD_DIR:-build-device}
export ROCMFORGE_GPU_BUILD_DIR=$build

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  bash scripts/gpu-test.sh >"$out/tests.log" 2>&1 || status=1
  grep -E "^(PASS|FAIL)|FAILED|gpu-test:|matvec|type|Q4|Q5|Q6|Q8|F16|copy" "$out/tests.log" | tail -40
else
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DROCMFORGE_GPU=cuda -DROCMFORGE_WERROR=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="${ROCMFORGE_CUDA_ARCH:-90}" >/dev/null
fi
cmake --build "$build" -j "$(nproc)" --target rocmforge >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
bin=$build/bin/rocmforge

if [ "${SKIP_GOLDEN:-0}" != 1 ] && [ -n "${ROCMFORGE_SHARED:-}" ]; then
  echo "==== generate --device gpu --dump-logits vs golden ===="
  for g in "$ROCMFORGE_SHARED"/golden/logits/*.p1.json; do
    name=$(basename "$g" .p1.json)
    model="$ROCMFORGE_SHARED/models/$name.gguf"
    [ -s "$model" ] || continue
    tokens=$(python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["tokens"])))' "$g")
    if ! "$bin" generate --device gpu -m "$model" --tokens "$tokens" -n 1 --dump-logits /tmp/rf-dump.json \
      >/dev/null 2>"$out/gen-$name.err"; then
      echo "FAIL  $name: generate failed: $(tail -1 "$out/gen-$name.err")"
      status=1
      continue
    fi
    python3 - "$g" /tmp/rf-dump.json "$name" <<'PY' || status=1
import json, math, sys
gold, got, name = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
tol = 1e-2 if "BF16" in name else 2e-3 if ("f32" in name or "F16" in name) else 5e-2
worst, bad_argmax = 0.0, 0
for a, b in zip(got["logits"], gold["logits"]):
    mean = sum(b) / len(b)
    sd = math.sqrt(sum((v - mean) ** 2 for v in b) / len(b))
    err = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)) / len(b)) / sd
    worst = max(worst, err)
    ia, ib = max(range(len(a)), key=a.__getitem__), max(range(len(b)), key=b.__getitem__)
    if ia != ib and b[ia] < b[ib] - 1e-3 * sd:  # a different argmax that is not a near-tie
        bad_argmax += 1
ok = worst <= tol and bad_argmax == 0 and len(got["logits"]) == len(gold["logits"])
print("%s  %-28s nRMSE %.2e (tol %.0e), argmax mismatches %d" % ("PASS" if ok else "FAIL", name, worst, tol,
      bad_argmax))
sys.exit(0 if ok else 1)
PY
  done
fi

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  echo "==== bench/gpu.sh ===="
  ROCMFORGE=$bin bash bench/gpu.sh 2>"$out/bench.err" || { status=1; tail -20 "$out/bench.err"; }
fi
exit $status
