#!/bin/sh
# tests/mpi/cli_mpi.sh MPIEXEC DECO DATA_DIR — `deco generate` under mpirun:
# 2 ranks print the llama2.c greedy fixture with tp=2 on the stats line;
# ranks started with different options fail (exit non-zero) naming both
# hashes; --tp that is not the world size is a usage error; a process whose
# environment claims 2 ranks but whose MPI world has 1 fails naming both.
set -u
mpiexec=$1 deco=$2 data=$3
run="$mpiexec --allow-run-as-root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "cli_mpi: FAIL: $*" >&2; exit 1; }

$run -np 2 "$deco" generate --model "$data/models/stories260K.bin" --temperature 0 --ignore-eos --print-ids \
  >"$tmp/out" 2>"$tmp/err" || fail "2 ranks: exit $? ($(cat "$tmp/err"))"
expect=$(tr '\n' ' ' <"$data/fixtures/stories260K/greedy_bos_256.ids" | tr -s ' ' | sed 's/ $//')
[ "$(cat "$tmp/out")" = "$expect" ] || fail "2 ranks: output differs from greedy_bos_256.ids"
tail -n 1 "$tmp/err" | grep -q ' tp=2$' || fail "stats line: $(tail -n 1 "$tmp/err")"
[ "$(grep -c '^stats:' "$tmp/err")" = 1 ] || fail "one stats line expected: $(cat "$tmp/err")"

# Different seeds on the two ranks (MPMD launch): every rank must refuse.
$run -np 1 "$deco" generate --temperature 0.8 --seed 1 --steps 8 : -np 1 "$deco" generate --temperature 0.8 \
  --seed 2 --steps 8 >"$tmp/out" 2>"$tmp/err" && fail "different options ran"
grep -q 'disagree on the configuration hash' "$tmp/err" || fail "no hash message: $(cat "$tmp/err")"

# --compare-ar on one rank only (it adds a second run's collectives).
$run -np 1 "$deco" generate --temperature 0 --spec lookup --steps 8 --compare-ar : -np 1 "$deco" generate \
  --temperature 0 --spec lookup --steps 8 >"$tmp/out" 2>"$tmp/err" && fail "--compare-ar on one rank ran"
grep -q 'disagree on the configuration hash' "$tmp/err" || fail "--compare-ar: no hash message: $(cat "$tmp/err")"

$run -np 2 "$deco" generate --tp 4 --steps 8 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -ne 0 ] || fail "--tp 4 under 2 ranks ran"
grep -q -- '--tp 4: the launcher started 2 ranks' "$tmp/err" || fail "--tp 4: $(cat "$tmp/err")"
RANK=0 WORLD_SIZE=2 "$deco" generate --steps 8 >"$tmp/out" 2>"$tmp/err" && fail "a world of 1 for 2 ranks ran"
grep -q 'MPI_COMM_WORLD has 1 ranks but .* says 2' "$tmp/err" || fail "world size: $(cat "$tmp/err")"
echo "cli_mpi: passed" >&2
