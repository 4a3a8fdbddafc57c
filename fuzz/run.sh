#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR/bin for SECONDS of fuzzer time in total (split evenly), each from its
# generated seed corpus plus the corpus kept from earlier runs. Exits non-zero when any fuzzer finds a crash.
#   usage: bash fuzz/run.sh BUILD_DIR SECONDS
set -euo pipefail
build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS}
seconds=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS}
build=$(cd "$build" && pwd)

fuzzers=()
for bin in "$build"/bin/*_fuzz; do
  [ -x "$bin" ] && fuzzers+=("$bin")
done
if [ ${#fuzzers[@]} -eq 0 ]; then
  echo "fuzz/run.sh: no *_fuzz binaries in $build/bin (configure with -DROCMFORGE_FUZZ=ON and build)" >&2
  exit 1
fi
per=$(( seconds / ${#fuzzers[@]} ))
[ "$per" -lt 1 ] && per=1

# One fuzzer: its messages on stdout / stderr, its exit status in $build/fuzz/NAME/status.
run_one() {
  local bin=$1 name seeds corpus artifacts
  name=$(basename "$bin")
  seeds="$build/fuzz/$name/seeds"
  corpus="$build/fuzz/$name/corpus"
  artifacts="$build/fuzz/$name/artifacts"
  rm -rf "$seeds"
  mkdir -p "$seeds" "$corpus" "$artifacts"
  if [ -x "${bin}_seeds" ]; then
    "${bin}_seeds" "$seeds"
  fi
  echo "fuzz: $name for ${per}s (seeds: $(ls "$seeds" | wc -l), corpus: $(ls "$corpus" | wc -l))"
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$bin" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$corpus" "$seeds" 2>"$build/fuzz/$name/log.txt"; then
    echo "fuzz: $name FAILED; last lines of $build/fuzz/$name/log.txt:"
    tail -n 40 "$build/fuzz/$name/log.txt"
    echo "fuzz: reproducers in $artifacts"
    echo 1 >"$build/fuzz/$name/status"
  else
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)" "$build/fuzz/$name/log.txt" || true
    echo 0 >"$build/fuzz/$name/status"
  fi
}

# Each fuzzer is one single-threaded process: FUZZ_JOBS (default: the core count) of them run at once, each for
# the same time as alone, so the fuzzing done is the same and the wall time shrinks (2 cores: 150 s -> 90 s).
jobs=${FUZZ_JOBS:-$(nproc)}
for bin in "${fuzzers[@]}"; do
  name=$(basename "$bin")
  mkdir -p "$build/fuzz/$name"
  rm -f "$build/fuzz/$name/status"
  run_one "$bin" >"$build/fuzz/$name/summary.txt" 2>&1 &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
done
wait
status=0
for bin in "${fuzzers[@]}"; do
  name=$(basename "$bin")
  cat "$build/fuzz/$name/summary.txt"
  [ "$(cat "$build/fuzz/$name/status" 2>/dev/null)" = 0 ] || status=1
done
exit $status
