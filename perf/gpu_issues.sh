#!/usr/bin/env bash
# perf/gpu_issues.sh OUT [--build] — the GPU halves of the KV-head
# compression, model-draft and layer-parallel issues (16, 18, 19) and the
# tensor-parallel cost model's timings (15) in one short run, with the
# suites of the code they time first, so what is measured is what passed:
#   1. suites: KV-head compression (the Gram kernel, exactness, the folded
#      model), model drafts, fused layer groups;
#   2. bench_kv_heads: synthetic llama2-7b, bf16, 32/16/8/4 KV heads,
#      B = 32 and 1, L = 4096: decode attention against its memory floor and
#      the whole graphed decode step, KV bytes per token, the batch that fits
#      40 GiB of KV (the whole 32-layer step is measured on a GPU of 100 GiB
#      or more; on a smaller one it is extrapolated from 2 and 8 layers,
#      since 32 KV heads at B = 32 need 64 GiB of KV);
#   3. bench_draft_step, synthetic llama3-8b (drafts of 8, 16 and 32 of its
#      32 layers) and smollm2-135m (16, 28, 30 of 30): graphed decode and
#      verify of a chain of 4, draft steps sequential and layer-parallel
#      N = 2 and 4 (fused), the expected speedups from perf/NOTES.md's
#      acceptance, and end to end the target as its own draft against
#      plain decoding;
#   4. perf/tp_cost.sh on the same build (issue 15's shard timings and tables,
#      in OUT/tp_cost/).
# Expected to take about 4 minutes (never run on a GPU yet); keeps to
# DECO_GPU_BUDGET_S seconds (default 240): a stage that would start too late
# is reported as skipped. Layout and --build as perf/gpu_step.sh (a prebuilt,
# relocated build/ with bin/, lib/, criterion-rt/; DECO_BUILD_DIR overrides).
# Writes OUT/summary.txt (printed as it goes, headline figures last),
# benches.csv, benches.log, gpu_tests.log, device.txt, tp_cost/.
#
# perf/gpu_issues.sh --cpu-check OUT — the same plumbing on the CPU at
# small shapes (no suites, no GPU): bench_kv_heads and bench_draft_step on a
# few layers of smollm2-135m in f32, perf/tp_cost.sh --cpu-check; under a
# minute on two cores. Its figures are the CPU's and never belong in a GPU
# table. Exit 0 when every stage passed.
set -u
cpu=0
if [ "${1:-}" = "--cpu-check" ]; then
  cpu=1
  shift
fi
out=${1:?usage: perf/gpu_issues.sh [--cpu-check] OUT [--build]}
budget=${DECO_GPU_BUDGET_S:-240}
targets="deco bench_kv_heads bench_draft_step bench_tp_layer"
. "$(dirname "$0")/gpu_lib.sh"
rm -rf "$out/gpu_tests.log" "$out/benches.csv" "$out/benches.log" "$out/tp_cost"

if [ "$cpu" -eq 1 ]; then
  t_start=$(date +%s)
  mkdir -p "$out"
  : >"$out/summary.txt"
  if [ "${2:-}" = --build ]; then
    cmake --build "$build" --target $targets -j "$(nproc)" >"$out/build.log" 2>&1 ||
      { note "FAIL: build of $targets (see build.log)"; exit 1; }
  fi
  device="CPU: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'), $(getconf _NPROCESSORS_ONLN) cores"
  note "device: $device (CPU plumbing check: not GPU figures)"
  note "commit: $(deco_gpu_commit "$root" "$build")"
  for b in bench_kv_heads bench_draft_step bench_tp_layer; do
    [ -x "$bin/$b" ] || { note "FAIL: $bin/$b not found (build the benches in $build)"; exit 1; }
  done
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  gpu_bench 60 bench_kv_heads --backend cpu --shape smollm2-135m --kv-heads 3,1 --batch 2,1 --context 64 \
    --layers 1,2 --reps 3 --device "$device"
  gpu_bench 90 bench_draft_step --backend cpu --shape smollm2-135m --n-layers 6 --draft-layers 4,6 --lp 2,4 \
    --draft-len 3 --prefix 32 --steps 40 --device "$device"
  tp_args=(--cpu-check "$build" "$out/tp_cost")
  # Plumbing only: one sample of a 9-node tree over a 64-id prefix (an
  # 81-node tree over 512 ids takes minutes in a sanitized build).
  export DECO_TP_COST_REPS=${DECO_TP_COST_REPS:-1} DECO_TP_COST_CPU_ARGS=${DECO_TP_COST_CPU_ARGS:---nodes 9 --prefix 64}
else
  gpu_begin "${2:-}"
  for f in models/stories260K.bin models/tok512.bin; do
    [ -f "$DECO_DATA_DIR/$f" ] || { note "FAIL: $DECO_DATA_DIR/$f is missing (set DECO_DATA_DIR)"; exit 1; }
  done
  device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  mem_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -n 1)
  gpu_suite gpu_test_compress_cuda 60
  gpu_suite gpu_test_draft_model_cuda 40
  gpu_suite gpu_test_layer_fused_cuda 40
  # 32 KV heads at B = 32, L = 4096 hold 64 GiB of KV beside 13.5 GB of weights.
  if [ "${mem_mib:-0}" -ge 100000 ] 2>/dev/null; then kv_layers=(); else kv_layers=(--layers 2,8); fi
  gpu_bench 80 bench_kv_heads --backend cuda --shape llama2-7b --kv-heads 32,16,8,4 --batch 32,1 --context 4096 \
    ${kv_layers[@]+"${kv_layers[@]}"} --device "${device:-cuda:0}"
  gpu_bench 70 bench_draft_step --backend cuda --shape llama3-8b --draft-layers 8,16,32 --lp 2,4 --reps 7 --inner 5 \
    --device "${device:-cuda:0}"
  gpu_bench 40 bench_draft_step --backend cuda --shape smollm2-135m --draft-layers 16,28,30 --lp 2,4 \
    --steps 256 --device "${device:-cuda:0}"
  tp_args=("$build" "$out/tp_cost")
fi

# Issue 15's shard timings on the same build (its own tables in tp_cost/).
lim=$(limit 100)
if [ "$lim" -lt 20 ]; then
  note "tp_cost: SKIPPED (time budget)"
  status=1
else
  start=$(date +%s)
  DECO_TP_COST_TIMEOUT_S=$((lim / 2)) timeout -k 10 "$lim" bash "$root/perf/tp_cost.sh" "${tp_args[@]}" \
    >"$out/tp_cost.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  note "tp_cost: exit $rc ($(($(date +%s) - start)) s; $([ $rc -eq 0 ] && echo "tables in tp_cost/tp_cost.md" ||
    echo "see tp_cost.log"))"
fi

# Headline figures: the summaries the benches print on stderr.
if [ -f "$out/benches.log" ]; then
  grep -E "^ *kv_heads +B |^ +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9]+% " "$out/benches.log" |
    while read -r line; do note "kv: $line"; done
  grep -E "^bench_draft_step: |^decode .* verify |^ *layers +draft |^ +[0-9]+ (sequential|lp) |^end to end" \
    "$out/benches.log" | while read -r line; do note "draft: $line"; done
fi
if [ "$cpu" -eq 1 ]; then
  note "overall: $([ $status -eq 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - t_start)) s (CPU plumbing check)"
  exit $status
fi
gpu_end
