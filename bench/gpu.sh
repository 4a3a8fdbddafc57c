#!/usr/bin/env bash
# GPU benchmark of issue 5, run ON the GPU machine: makes the synth models there (random weights, Llama-2-7B shape
# in Q4_0, Q4_K_M, Q8_0, F16 and Llama-3-8B shape in Q4_K_M) with `rocmforge synth` into MODEL_DIR, then runs
# `rocmforge bench --device gpu --json` (pp512 / tg128) on each. The roofline of each object is the GPU's copy
# bandwidth measured in the same run. Writes bench/results/<date>-gpu.json = {"date", "commit", "results": [...]}
# (and a copy into $OUT when set), then prints a table with the llama.cpp H100 figures of the issue.
#
# Env: ROCMFORGE (binary, default build/bin/rocmforge), MODEL_DIR (default /tmp/rocmforge-gpu-bench; models are
# reused when present), MODELS (default "7b-Q4_0 7b-Q4_K_M 7b-Q8_0 7b-F16 8b-Q4_K_M"), P (512), N (128), R (3),
# DECODE_BATCHES (2,4,8,32: sequences of the batched decode runs), COMMIT (recorded commit; default: git rev-parse, "unknown" without git).
#   run(carry=[".deps"], command="bash scripts/gpu-build.sh && bash bench/gpu.sh")
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${ROCMFORGE:-build/bin/rocmforge}
model_dir=${MODEL_DIR:-/tmp/rocmforge-gpu-bench}
models=${MODELS:-"7b-Q4_0 7b-Q4_K_M 7b-Q8_0 7b-F16 8b-Q4_K_M"}
mkdir -p "$model_dir" bench/results
[ -x "$bin" ] || { echo "gpu.sh: $bin not found (build rocmforge with -DROCMFORGE_GPU=cuda first)" >&2; exit 1; }

results=()
for m in $models; do
  shape=${m%%-*}
  type=${m#*-}
  model="$model_dir/synth-$m.gguf"
  if [ ! -s "$model" ]; then
    t0=$(date +%s)
    case "$shape" in
      7b) "$bin" synth --n-embd 4096 --n-ff 11008 --n-layer 32 --n-head 32 --n-vocab 32000 --type "$type" -o "$model" ;;
      8b) "$bin" synth --n-embd 4096 --n-ff 14336 --n-layer 32 --n-head 32 --n-head-kv 8 --n-vocab 128256 \
            --type "$type" -o "$model" ;;
      *) echo "gpu.sh: unknown shape '$shape' in '$m'" >&2; exit 1 ;;
    esac
    echo "gpu.sh: made $model in $(($(date +%s) - t0)) s" >&2
  fi
  echo "gpu.sh: bench $m" >&2
  results+=("$("$bin" bench --device gpu -m "$model" -p "${P:-512}" -n "${N:-128}" -r "${R:-3}" \
    --decode-batches "${DECODE_BATCHES:-2,4,8,32}" --json)")
done

date=$(date -u +%Y-%m-%d)
out="bench/results/$date-gpu.json"
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
printf '%s\n' "${results[@]}" | python3 -c '
import json, sys
dec = json.JSONDecoder(); text = sys.stdin.read(); objs = []; i = 0
while i < len(text):
    if text[i].isspace(): i += 1; continue
    o, i = dec.raw_decode(text, i); objs.append(o)
print(json.dumps({"date": sys.argv[1], "commit": sys.argv[2], "results": objs}, indent=2))
' "$date" "$commit" > "$out"
[ -n "${OUT:-}" ] && cp "$out" "$OUT/"
echo "gpu.sh: wrote $out" >&2
# llama.cpp (CUDA, flash attention) on the same H100 80GB HBM3, from issue 5: pp512, tg128 tokens/s.
python3 -c '
import json, sys
ref = {"7b-Q4_0": (10415, 222.9), "7b-Q4_K_M": (9239, 214.4), "7b-Q8_0": (10635, 190.6), "7b-F16": (17210, 140.0),
       "8b-Q4_K_M": (9060, 192.0)}
print("%-12s %9s %8s %9s %8s %6s %6s %9s  %s" % ("model", "pp t/s", "x llama", "tg t/s", "x llama", "roof", "GB/tok",
                                               "copy GB/s", "batched decode t/s"))
for r in json.load(open(sys.argv[1]))["results"]:
    name = r["model"].split("/")[-1].replace("synth-", "").replace(".gguf", "")
    pp, tg = ref.get(name, (0, 0))
    batched = " ".join("x%d %.0f" % (b["sequences"], b["tokens_per_s"]) for b in r.get("batched_tg", []))
    print("%-12s %9.0f %8.2f %9.1f %8.2f %5.0f%% %6.2f %9.0f  %s" % (name, r["pp_tokens_per_s"],
          r["pp_tokens_per_s"] / pp if pp else 0, r["tg_tokens_per_s"], r["tg_tokens_per_s"] / tg if tg else 0,
          100 * r["tg_roofline_fraction"], r["weight_bytes_per_token"] / 1e9, r["memory_bandwidth_bytes_per_s"] / 1e9,
          batched))
' "$out"
