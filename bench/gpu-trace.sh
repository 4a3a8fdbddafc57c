#!/usr/bin/env bash
# Where a decode step's time goes on the critical path, on the GPU machine: builds rocmforge with kernel tracing
# (-DROCMFORGE_GPU_TRACE=ON: every kernel stamps the global timer when its dependency wait returns, compat.h), runs
# `bench -p 0 -n N` on a synth model of Llama-2-7B shape (TYPE, default Q4_0; LAYERS, default 32), graphs off, and
# prints, per kernel, the mean time from its wait's return to the next kernel's (what it adds to the step) over the
# last STEPS decode steps, plus how long before that the kernel had started (its prologue overlapping the one
# before it).
# Env: TYPE, LAYERS, KV_HEADS (32; 8 and N_FF 14336 for Llama-3-8B's layer shape), N_FF, N (64), STEPS (16),
# TIMELINE (launches of one step to list, 0), POINTS (the kernel whose trace_stamp / trace_last_warp stamps (kinds
# 2..7, compat.h; a kernel with several launches per layer gets a line per launch of the layer) are timed against its
# wait, default attention_lean), BUILD (build-trace), ROCMFORGE_* pass through (e.g. ROCMFORGE_GPU_FUSE=0). The
# last-warp stamps cost an atomic per warp: a traced 7B Q4_0 step runs ~10 % longer than an untraced one.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-trace}
type=${TYPE:-Q4_0}
layers=${LAYERS:-32}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DROCMFORGE_GPU=cuda -DROCMFORGE_WERROR=OFF \
  -DROCMFORGE_TESTS=OFF -DROCMFORGE_GPU_TRACE=ON -DCMAKE_CUDA_ARCHITECTURES="${ROCMFORGE_CUDA_ARCH:-90}" >/dev/null
cmake --build "$build" -j "$(nproc)" --target rocmforge >/dev/null
bin=$build/bin/rocmforge
kv=${KV_HEADS:-32}
ff=${N_FF:-11008}
model=/tmp/rf-trace-$type-$layers-$kv-$ff.gguf
[ -s "$model" ] || "$bin" synth --n-embd 4096 --n-ff "$ff" --n-layer "$layers" --n-head 32 --n-head-kv "$kv" \
  --n-vocab 32000 --type "$type" -o "$model" >&2
trace=/tmp/rf-trace.txt
ROCMFORGE_GPU_GRAPHS=0 ROCMFORGE_GPU_TRACE_FILE=$trace "$bin" bench --device gpu -m "$model" -p 0 -n "${N:-64}" -r 1 \
  >/dev/null
python3 - "$trace" "${STEPS:-16}" "$layers" "${TIMELINE:-0}" "${POINTS:-attention_lean}" <<'PY'
import collections, re, sys
lines = open(sys.argv[1]).read().splitlines()
print(lines[0])
rows, points = [], collections.defaultdict(list)
for l in lines[1:]:
    if l.startswith("@"):  # trace_stamp(k) inside a kernel: "@k i stamp"
        k, i, stamp = l[1:].split()
        points[int(k)].append(int(stamp))
        continue
    i, start, wait, name = l.split(" ", 3)
    short = name[:60]
    for m in re.finditer(r"\d+", name):  # the mangled name's <length><identifier> that ends in "kernel"
        for k in range(m.start(), m.end()):  # a hash's digits may run into the length
            ident = name[m.end():m.end() + int(name[k:m.end()])]
            if ident.endswith("kernel") and short == name[:60]:
                short = ident
    rows.append((int(start), int(wait), short))
# A decode step ends with the sampling kernels; find step boundaries by the embedding lookup that starts each step.
starts = [i for i, r in enumerate(rows) if "embed" in r[2]]
steps = int(sys.argv[2])
first = starts[-steps - 1] if len(starts) > steps else starts[0]
last = starts[-1]
tot, cnt, early = collections.Counter(), collections.Counter(), collections.Counter()
for i in range(first, last):
    s, w, name = rows[i]
    nxt = rows[i + 1][1]
    tot[name] += (nxt - w) / 1e3
    cnt[name] += 1
    if i > 0 and s and rows[i - 1][1]:
        early[name] += (w - s) / 1e3
n = len(starts[-steps - 1:-1]) if len(starts) > steps else 1
if int(sys.argv[4]) > 0:  # the first TIMELINE launches of the last full step, times from its first wait
    a = starts[-2]
    t0 = rows[a][1]
    for i in range(a, min(starts[-1], a + int(sys.argv[4]))):
        s, w, name = rows[i]
        print("%4d %-32s start %8.2f wait %8.2f  to next wait %6.2f us" % (i - a, name[:32], (s - t0) / 1e3,
              (w - t0) / 1e3, (rows[i + 1][1] - w) / 1e3))
step_us = (rows[last][1] - rows[first][1]) / 1e3 / n
print("decode step %.1f us (mean of %d steps), %d launches per step" % (step_us, n, (last - first) // n))
if points:  # each kind's stamps against the wait of the launches of the kernel that stamps them (POINTS)
    waits = [r[1] for r in rows if sys.argv[5] in r[2]]
    per_step = sum(1 for r in rows[starts[-2]:starts[-1]] if sys.argv[5] in r[2])
    classes = max(1, per_step // int(sys.argv[3]))  # launches of the kernel per layer (e.g. 3 fused products)
    for k in sorted(points):
        if len(points[k]) != len(waits):  # another kernel's stamps
            continue
        d = [(p - w) / 1e3 for p, w in zip(points[k], waits)]
        for c in range(classes):  # by launch index modulo the launches per layer
            dc = [v for i, v in enumerate(d) if i % classes == c][-steps * int(sys.argv[3]):]
            print("point %d, launch %d of %d per layer: %.2f us after the wait of %s (mean of %d)" %
                  (k, c, classes, sum(dc) / max(1, len(dc)), sys.argv[5], len(dc)))
print("%10s %7s %7s %10s  %s" % ("us/step", "share", "calls", "us/call", "kernel (wait to next wait; started before its wait)"))
for name, us in tot.most_common():
    print("%10.1f %6.1f%% %7.1f %10.2f  %s (%.2f us)" % (us / n, 100 * us / n / step_us, cnt[name] / n, us / cnt[name],
          name, early[name] / cnt[name]))
PY
