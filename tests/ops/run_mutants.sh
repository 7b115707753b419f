#!/usr/bin/env bash
# tests/ops/run_mutants.sh BUILD_DIR [N ...] — a test that cannot fail is a
# defect: builds the CPU-only library with each deliberately broken C
# reference (-DDECO_HARNESS_MUTANT=N, the `#if DECO_HARNESS_MUTANT == N`
# hooks in kernels/*/*_ref.c) in BUILD_DIR (one folder, reconfigured per
# mutant; only libdeco and the harness are built) and runs the op harness
# (test_ops_harness), which must FAIL for every one. Prints, per mutant, the
# harness's first complaint and the ops that caught it. Exits 0 when every
# mutant was caught, 1 when one passed (or did not build).
#   tests/ops/run_mutants.sh build-mutant        # all of them
#   tests/ops/run_mutants.sh build-mutant 4      # CI: the wrong GQA group
set -u
build=${1:?usage: tests/ops/run_mutants.sh BUILD_DIR [N ...]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

# Mutant n: what it breaks (keep in step with the hooks and docs/TESTING.md).
desc=(
  [1]="kv_append ignores kv_stride (wrong stride)"
  [2]="rope ignores q_stride (wrong stride)"
  [3]="attention and tree attention drop the scale"
  [4]="attention and tree attention read KV head h % n_kv instead of h / group (wrong GQA group)"
  [5]="causal attention lets a token see the next slot (off-by-one mask)"
  [6]="tree attention lets node i see node i + 1 (off-by-one mask)"
  [7]="rmsnorm drops eps"
  [8]="rope ignores theta (always 10000)"
  [9]="swiglu reads strided rows as dense (in_stride ignored)"
  [10]="embedding gives a zero row, not NaN, for an id out of range"
  [11]="kv_compact leaves the last accepted node where it was"
  [12]="rope ignores the half-split style"
)
mutants=("$@")
[ ${#mutants[@]} -gt 0 ] || mutants=(1 2 3 4 5 6 7 8 9 10 11 12)

status=0
for n in "${mutants[@]}"; do
  if [ -z "${desc[$n]:-}" ]; then
    echo "mutant $n: no such mutant"
    status=1
    continue
  fi
  start=$(date +%s)
  log=$build/mutant-$n.log
  mkdir -p "$build"
  if ! cmake -S "$root" -B "$build" -DDECO_CUDA=OFF -DDECO_BUILD_TESTS=ON -DDECO_BUILD_BENCHES=OFF \
      -DDECO_HARNESS_MUTANT="$n" >"$log" 2>&1 ||
     ! cmake --build "$build" -j"$jobs" --target test_ops_harness >>"$log" 2>&1; then
    echo "mutant $n (${desc[$n]}): DID NOT BUILD (see $log)"
    tail -n 20 "$log"
    status=1
    continue
  fi
  "$build/bin/test_ops_harness" --jobs "$jobs" >>"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then
    echo "mutant $n (${desc[$n]}): NOT CAUGHT — the op harness passed (${secs} s; $log)"
    status=1
  else
    caught=$(grep -E '^harness [a-z_]+: .*[1-9][0-9]* FAILED' "$log" | sed -E 's/^harness ([a-z_]+):.*/\1/' | sort -u | tr '\n' ' ')
    echo "mutant $n (${desc[$n]}): caught, the op harness failed (exit $rc, ${secs} s) in: ${caught:-?}"
    grep -m 1 -A 3 '^FAIL ' "$log" | sed 's/^/    /'
  fi
done
exit $status
