#!/usr/bin/env bash
# Where GPU time goes in one forward pass, per kernel (ncu gpu__time_duration), on the GPU machine: makes a 2-layer
# synth model of Llama-2-7B layer shape (TYPE, default Q4_0), then profiles `generate --device gpu` over a prompt of
# P tokens (default 512) with 1 generated token, and prints total microseconds per kernel name, largest first.
# DECODE=N profiles batched decode instead: `bench --decode-batches N` (one N x 16-token prefill, then 3 steps of N
# sequences with one token each; the int8 product and decode attention kernels are the steps' own).
# Env: ROCMFORGE (binary, default build/bin/rocmforge), TYPE, P, LAYERS (2), DECODE, NCU_ARGS (extra ncu options,
# e.g. "--cache-control none --clock-control none" for kernels as they run in a decode step: warm L2, boost clock).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${ROCMFORGE:-build/bin/rocmforge}
type=${TYPE:-Q4_0}
p=${P:-512}
model=/tmp/rf-profile-$type-${LAYERS:-2}.gguf
[ -s "$model" ] || "$bin" synth --n-embd 4096 --n-ff 11008 --n-layer "${LAYERS:-2}" --n-head 32 --n-vocab 32000 \
  --type "$type" -o "$model" >&2
tokens=$(python3 -c "import sys; print(','.join(str(1 + (i * 7919) % 31000) for i in range(int(sys.argv[1]))))" "$p")
csv=/tmp/rf-profile.csv
if [ -n "${DECODE:-}" ]; then
  cmd=("$bin" bench --device gpu -m "$model" -p 0 -n 3 -r 1 --decode-batches "$DECODE")
  label="decode x$DECODE (3 steps after a prefill)"
else
  cmd=("$bin" generate --device gpu -m "$model" --tokens "$tokens" -n 1 --temp 0)
  label="prompt $p tokens"
fi
# shellcheck disable=SC2086
ncu ${NCU_ARGS:-} --print-kernel-base function --metrics gpu__time_duration.sum --csv --print-units base "${cmd[@]}" >"$csv" 2>/tmp/rf-profile.err || {
  tail -5 /tmp/rf-profile.err; exit 1; }
python3 - "$csv" "$label" <<'PY'
import csv, collections, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head = rows[0]; ki = head.index("Kernel Name"); vi = head.index("Metric Value")
tot, cnt = collections.Counter(), collections.Counter()
for r in rows[1:]:
    try: v = float(r[vi].replace(",", ""))
    except ValueError: continue
    name = r[ki].replace("(anonymous namespace)::", "").replace("rf::gpu::", "")
    name = name.split("(")[0].split("<")[0].replace("void ", "").strip()
    tot[name] += v / 1e3; cnt[name] += 1
all_us = sum(tot.values())
print("%s: %d kernels, %.0f us total" % (sys.argv[2], sum(cnt.values()), all_us))
for name, us in tot.most_common(25):
    print("%10.0f us %5.1f%% %5d x  %s" % (us, 100 * us / all_us, cnt[name], name))
PY
