#!/usr/bin/env bash
# Runs every fuzz target of a DECO_FUZZ build for SECONDS each, on a corpus
# seeded by make_corpus.py and kept in BUILD_DIR/fuzz-corpus/<target>.
# Crash inputs go to BUILD_DIR/fuzz-artifacts/. Exit status non-zero if any
# target found a problem.   Usage: fuzz/run.sh BUILD_DIR SECONDS
set -u
build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS}
seconds=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS}
here=$(cd "$(dirname "$0")" && pwd)
corpus=$build/fuzz-corpus
artifacts=$build/fuzz-artifacts
mkdir -p "$corpus" "$artifacts"
python3 "$here/make_corpus.py" "$corpus" || exit 1

shopt -s nullglob
targets=("$build"/bin/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no fuzz_* targets in $build/bin (configure with -DDECO_FUZZ=ON)" >&2
  exit 1
fi
failed=0
for bin in "${targets[@]}"; do
  name=$(basename "$bin")
  mkdir -p "$corpus/$name"
  log=$build/fuzz-$name.log
  # -max_len covers the seeds (the tokenizer's are ~2.5 KB); -timeout and
  # -rss_limit_mb turn hangs and runaway allocations into failures.
  "$bin" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$corpus/$name" >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  if [ $rc -eq 0 ]; then
    echo "fuzz: $name clean: ${runs:-?} runs in ${seconds}s, corpus $(ls "$corpus/$name" | wc -l) inputs"
  else
    echo "fuzz: $name FAILED (exit $rc); log $log, inputs in $artifacts:" >&2
    tail -40 "$log" >&2
    failed=1
  fi
done
exit $failed
