#!/usr/bin/env bash
# perf/gpu_kernels.sh OUT [--build] — the attention and acceptance kernels'
# GPU measurements (issue "tree attention, decode attention and acceptance
# at the roofline") in one short run, with the suites and compute-sanitizer
# checks of the kernels they time, so what is measured is what passed:
#   1. suites: tree attention (every path, the mma shapes, bad data),
#      acceptance, the ops harness (decode attention among them);
#   2. memcheck and racecheck on their small cases;
#   3. bench_tree_attention (trees of 16/64/128 nodes over the (B, L) grid,
#      decode attention on the same cache; the path that ran is a CSV
#      column), bench_accept (B = 1/32/64, V = 32000/128256, greedy,
#      temperature, top-p), bench_ops (skinny matmul and decode attention).
# Layout, --build and the budget (DECO_GPU_BUDGET_S, default 240) as
# perf/gpu_step.sh. Writes OUT/summary.txt (printed last, with the B = 1
# figures the issue's table names), benches.csv, benches.log,
# gpu_tests.log, sanitizer.log, device.txt.
set -u
out=${1:?usage: perf/gpu_kernels.sh OUT [--build]}
budget=${DECO_GPU_BUDGET_S:-240}
targets="deco bench_tree_attention bench_accept bench_ops"
. "$(dirname "$0")/gpu_lib.sh"
rm -f "$out/gpu_tests.log" "$out/benches.csv" "$out/benches.log" "$out/sanitizer.log"
gpu_begin "${2:-}"

gpu_suite gpu_test_tree_attention 90
gpu_suite gpu_test_accept_cuda 60
gpu_suite gpu_test_ops_cuda 60

for tool in memcheck racecheck; do
  gpu_sanitize $tool gpu_test_tree_attention "*/bad_data_mma"
  gpu_sanitize $tool gpu_test_tree_attention "*/bad_data_mma_split"
  gpu_sanitize $tool gpu_test_accept_cuda "*/greedy_small_vocab_ties"
  gpu_sanitize $tool gpu_test_accept_cuda "*/sample_matches_reference_small_vocab"
  gpu_sanitize $tool gpu_test_ops_cuda "*/small_ops"
done

gpu_bench 70 bench_tree_attention --reps 20
gpu_bench 50 bench_accept --reps 20
gpu_bench 50 bench_ops --reps 20

# Headline figures: the summaries the benches print on stderr for the
# issue's B = 1 cases (trees of 16 and 64 nodes over L = 4096, with decode
# attention on the same cache in the decode_us column; acceptance of a
# chain of 5 at V = 32000).
if [ -f "$out/benches.log" ]; then
  grep -E "^ *B +L +n |^ *1 +4096 +(16|64) |^B=1 chain K=5 V=32000" "$out/benches.log" |
    while read -r line; do note "bench: $line"; done
fi
gpu_end
