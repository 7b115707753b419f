#!/usr/bin/env bash
# scripts/golden-cli.sh [DECO] [BACKEND] — what `deco generate` emits, for
# checking that a refactoring changes no output: --spec none|lookup|recycle
# x --temperature 0|0.7 x three prompts on stories260K with --print-ids,
# each run's ids and its stats line without seconds= and tok_per_s=. Prints
# everything on stdout; compare two runs with diff, or their sha256.
#   scripts/golden-cli.sh build/bin/deco cpu | sha256sum
set -euo pipefail
deco=${1:-build/bin/deco}
backend=${2:-cpu}
err=$(mktemp)
trap 'rm -f "$err"' EXIT
prompts=("Once upon a time" "Tom has a red ball. Tom has a red" "The little dog was sad because")
for spec in none lookup recycle; do
  for t in 0 0.7; do
    for p in "${prompts[@]}"; do
      echo "== --spec $spec --temperature $t --prompt '$p' --backend $backend"
      "$deco" generate --spec "$spec" --temperature "$t" --prompt "$p" --backend "$backend" --print-ids 2>"$err"
      tail -n 1 "$err" | sed -E 's/ seconds=[0-9.]+ tok_per_s=[0-9.]+//'
    done
  done
done
