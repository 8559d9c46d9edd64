#!/usr/bin/env bash
# Builds the libFuzzer harnesses (the `fuzz` preset) and runs each for a bounded time from its
# committed seed corpus (tests/fuzz/corpus/<name>/), then prints one line a harness: executions,
# edges covered, corpus size, outcome. Results also go to build/fuzz/results.tsv (read by
# scripts/reliability.py). A crash stops the script with the harness's output and its reproducer.
#   usage: scripts/fuzz.sh [seconds per harness (default 45)] [harness name ...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-45}; shift || true
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
out=build/fuzz/results.tsv
mkdir -p build/fuzz/work
printf 'harness\tseconds\texecutions\tcoverage\tfeatures\tcorpus\toutcome\n' > "$out"
names=("$@")
if ((${#names[@]} == 0)); then
  for f in tests/fuzz/*_fuzz.cpp; do names+=("$(basename "$f" .cpp)"); done
fi
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for name in "${names[@]}"; do
  seeds=tests/fuzz/corpus/${name%_fuzz}
  work=build/fuzz/work/$name
  rm -rf "$work"; mkdir -p "$work"
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null || true
  log=build/fuzz/$name.log
  # -rss_limit_mb and -malloc_limit_mb make an allocation out of proportion to the input a
  # failure (DESIGN.md 11: at most a small constant times the bytes received).
  if ./build/fuzz/tests/fuzz/"$name" "$work" -max_total_time="$secs" -rss_limit_mb=2048 \
       -malloc_limit_mb=256 -timeout=10 -print_final_stats=1 -artifact_prefix=build/fuzz/ \
       >"$log" 2>&1; then
    outcome=ok
  else
    outcome=FAILED; status=1
    tail -60 "$log"
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  ft=$(grep -Eo 'ft: [0-9]+' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  corp=$(ls "$work" | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$secs" "$execs" "$cov" "$ft" "$corp" "$outcome" >> "$out"
  printf '%-28s %3ss  %10s execs  cov %6s  ft %6s  corpus %5s  %s\n' "$name" "$secs" "$execs" "$cov" "$ft" "$corp" "$outcome"
done
exit $status
