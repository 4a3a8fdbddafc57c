#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR/bin for SECONDS in total (split evenly), each starting from its
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

status=0
for bin in "${fuzzers[@]}"; do
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
    echo "fuzz: $name FAILED; last lines of $build/fuzz/$name/log.txt:" >&2
    tail -n 40 "$build/fuzz/$name/log.txt" >&2
    echo "fuzz: reproducers in $artifacts" >&2
    status=1
  else
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)" "$build/fuzz/$name/log.txt" || true
  fi
done
exit $status
