#!/usr/bin/env bash
# perf/tp_cost.sh [--cpu-check] [BUILD_DIR] OUTDIR — the tensor-parallel
# cost model's measurements and tables (docs/PERF.md, "Tensor parallelism"):
# bench_tp_layer times one rank's shard per layer on one GPU for the shapes
# issue 15 names (synthetic llama3-8b at TP 1, 2, 4, 8; the 70B shape
# llama3-70b at TP 4, 8; bf16, graphed), then perf/tp_cost_model.py adds the
# all-reduces of assumed interconnects. Expected to take about a minute on an
# H100, never run on a GPU yet (budget: 4 minutes; each bench call is bounded
# by DECO_TP_COST_TIMEOUT_S, default 100).
# --cpu-check runs the same plumbing on the CPU with smollm2-135m (f32, TP 1,
# 3, 9: its 9 query heads allow no TP 2), a few seconds; its figures are the
# CPU's and never belong in a GPU table. DECO_TP_COST_REPS (default 3) and
# DECO_TP_COST_CPU_ARGS (more bench_tp_layer options) shape the check.
# BUILD_DIR defaults to $DECO_BUILD_DIR, else build/ of the repository; it
# must hold bin/bench_tp_layer (fails, naming the path, when it does not).
# Files written: OUTDIR/tp_layer.csv (the bench's rows), tp_layer.log (its
# stderr), tp_cost.md (the tables, also printed), tp_predictions.csv,
# lp_predictions.csv (layer-parallel drafts across ranks).
set -u
usage="usage: perf/tp_cost.sh [--cpu-check] [BUILD_DIR] OUTDIR"
cpu=0
if [ "${1:-}" = "--cpu-check" ]; then
  cpu=1
  shift
fi
root=$(cd "$(dirname "$0")/.." && pwd)
case $# in
  1) build=${DECO_BUILD_DIR:-$root/build}; out=$1 ;;
  2) build=$1; out=$2 ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
bench=$build/bin/bench_tp_layer
if [ ! -x "$bench" ]; then
  echo "tp_cost: $bench not found: build the benches (DECO_BUILD_BENCHES=ON, the default) in $build" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "tp_cost: python3 not found (perf/tp_cost_model.py needs it)" >&2; exit 1; }
mkdir -p "$out" || exit 1
. "$root/scripts/gpu-env.sh"
deco_gpu_env "$build"
limit=${DECO_TP_COST_TIMEOUT_S:-100}
csv=$out/tp_layer.csv
log=$out/tp_layer.log
: >"$csv"
: >"$log"

if [ "$cpu" -eq 1 ]; then
  device="CPU: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'), $(getconf _NPROCESSORS_ONLN) cores"
  runs=("smollm2-135m 1,3,9")
  # DECO_TP_COST_CPU_ARGS: more bench_tp_layer options for the check (a
  # plumbing run under the sanitizers passes a smaller tree and prefix).
  read -r -a cpu_args <<<"${DECO_TP_COST_CPU_ARGS:-}"
  extra=(--backend cpu --reps "${DECO_TP_COST_REPS:-3}" ${cpu_args[@]+"${cpu_args[@]}"})
else
  device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  if [ -z "$device" ]; then
    echo "tp_cost: no GPU found (nvidia-smi); --cpu-check runs the plumbing on the CPU" >&2
    exit 1
  fi
  runs=("llama3-8b 1,2,4,8" "llama3-70b 4,8")
  extra=(--backend cuda)
fi

header=()
for run in "${runs[@]}"; do
  read -r shape tps <<<"$run"
  echo "tp_cost: $shape at TP $tps on $device" >&2
  # bench_tp_layer exits 77 without a device: a failure here, never a skip.
  timeout -k 10 "$limit" "$bench" --shape "$shape" --tp "$tps" --device "$device" "${extra[@]}" ${header[@]+"${header[@]}"} \
    >>"$csv" 2>>"$log"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "tp_cost: bench_tp_layer --shape $shape --tp $tps failed (exit $rc; $log):" >&2
    tail -n 5 "$log" >&2
    exit 1
  fi
  header=(--no-header)
done
python3 "$root/perf/tp_cost_model.py" "$csv" --predictions "$out/tp_predictions.csv" \
  --layer-parallel "$out/lp_predictions.csv" >"$out/tp_cost.md" || exit 1
cat "$out/tp_cost.md"
echo "tp_cost: $csv, $out/tp_cost.md, $out/tp_predictions.csv" >&2
