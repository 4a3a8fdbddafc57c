#!/usr/bin/env bash
# CPU benchmark of issue 4: 1B-shape synth models (n_embd 2048, n_ff 5632, 22 layers, 32 heads, 4 KV heads,
# vocab 32000) in Q4_0, Q4_K_M and Q8_0, each run through `rocmforge bench` with 2 threads.
# Writes bench/results/<date>-cpu.json = {"date", "commit", "results": [bench objects]}.
#
# Env: ROCMFORGE (binary, default build/bin/rocmforge), MODEL_DIR (default /tmp/rocmforge-bench; models are
# reused when present), TYPES, THREADS (2), P (512), N (128), R (3).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${ROCMFORGE:-build/bin/rocmforge}
model_dir=${MODEL_DIR:-/tmp/rocmforge-bench}
types=${TYPES:-"Q4_0 Q4_K_M Q8_0"}
threads=${THREADS:-2}
mkdir -p "$model_dir" bench/results
[ -x "$bin" ] || { echo "cpu.sh: $bin not found (build rocmforge first)" >&2; exit 1; }

results=()
for t in $types; do
  model="$model_dir/synth-1b-$t.gguf"
  if [ ! -s "$model" ]; then
    "$bin" synth --n-embd 2048 --n-ff 5632 --n-layer 22 --n-head 32 --n-head-kv 4 --n-vocab 32000 \
      --type "$t" -o "$model"
  fi
  echo "cpu.sh: bench $t" >&2
  results+=("$("$bin" bench -m "$model" -p "${P:-512}" -n "${N:-128}" -r "${R:-3}" --threads "$threads" --json)")
done

date=$(date -u +%Y-%m-%d)
out="bench/results/$date-cpu.json"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
printf '%s\n' "${results[@]}" | python3 -c '
import json, sys
dec = json.JSONDecoder(); text = sys.stdin.read(); objs = []; i = 0
while i < len(text):
    if text[i].isspace(): i += 1; continue
    o, i = dec.raw_decode(text, i); objs.append(o)
print(json.dumps({"date": sys.argv[1], "commit": sys.argv[2], "results": objs}, indent=2))
' "$date" "$commit" > "$out"
echo "cpu.sh: wrote $out" >&2
python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("%-40s pp%d %7.1f t/s  tg%d %6.1f t/s  roofline %.0f%%  load %.2fs  rss %.0f MiB" % (r["model"].split("/")[-1],
          r.get("n_prompt", 0), r["pp_tokens_per_s"], r.get("n_gen", 0), r["tg_tokens_per_s"],
          100 * r["tg_roofline_fraction"], r["load_seconds"], r["peak_rss_bytes"] / 2**20))
' "$out"
