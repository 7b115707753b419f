#!/usr/bin/env bash
# perf/gpu_step.sh OUT [--build] — the speculative step's GPU measurements
# (issue "the speculative step at the roofline") in one short run, with the
# suites and compute-sanitizer checks of the code they time, so what is
# measured is what passed:
#   1. suites: the step (prepare/commit), the graph against the CPU, the
#      recycling pipeline, acceptance, the forward;
#   2. bench_spec on stories260K, greedy, plain decoding (ar) against Token
#      Recycling with a warm table, f32 and bf16, both graphed: the speedup
#      and the step-time ratio (seconds per forward);
#   3. bench_forward: synthetic llama3-8b, t_verify(81) / t_decode graphed,
#      and synthetic llama2-7b, the B = 1 decode step against its weight floor;
#   4. memcheck and racecheck on the small cases of the suites above;
#   5. if Nsight Compute is there and time is left, per-kernel times of both
#      steps (perf/profile_step.sh).
# A prebuilt, relocated build/ (tests/gpu/run.sh's layout: build/bin,
# build/lib, build/criterion-rt) and data/; --build first rebuilds the
# library and the two benches there (the suites need Criterion: prebuild
# them). Keeps to DECO_GPU_BUDGET_S seconds (default 240). Writes
# OUT/summary.txt (printed last, with the headline figures), benches.csv,
# benches.log, gpu_tests.log, sanitizer.log, device.txt.
set -u
out=${1:?usage: perf/gpu_step.sh OUT [--build]}
budget=${DECO_GPU_BUDGET_S:-240}
targets="deco bench_spec bench_forward"
. "$(dirname "$0")/gpu_lib.sh"
rm -f "$out/gpu_tests.log" "$out/benches.csv" "$out/benches.log" "$out/sanitizer.log"
gpu_begin "${2:-}"

for f in models/stories260K.bin models/tok512.bin; do
  [ -f "$DECO_DATA_DIR/$f" ] || { note "FAIL: $DECO_DATA_DIR/$f is missing (set DECO_DATA_DIR)"; exit 1; }
done

for s in gpu_test_spec_step_cuda gpu_test_graph_cuda gpu_test_graph_vs_cpu gpu_test_recycle_cuda \
  gpu_test_accept_cuda gpu_test_forward_cuda; do
  gpu_suite $s 60
done

spec=(--backend cuda --model "$DECO_DATA_DIR/models/stories260K.bin" --tokenizer "$DECO_DATA_DIR/models/tok512.bin"
  --prompts "$root/perf/prompts/prompts.tsv" --methods ar,recycle-warm)
gpu_bench 60 bench_spec "${spec[@]}" --dtype f32
gpu_bench 60 bench_spec "${spec[@]}" --dtype bf16
gpu_bench 60 bench_forward --model llama3-8b --reps 20
gpu_bench 60 bench_forward --model llama2-7b --reps 20

for tool in memcheck racecheck; do
  gpu_sanitize $tool gpu_test_spec_step_cuda "*/prepare_matches_reference"
  gpu_sanitize $tool gpu_test_accept_cuda "*/greedy_small_vocab_ties"
  gpu_sanitize $tool gpu_test_recycle_cuda "*/small_pipeline"
done
gpu_sanitize memcheck gpu_test_graph_cuda "*/small_recycle_greedy"
gpu_sanitize memcheck gpu_test_forward_cuda "*/synthetic_weights_identical_on_both_backends"

if command -v ncu >/dev/null 2>&1 && [ "$(left)" -ge 40 ]; then
  DECO_BUILD_DIR=$build DECO_PROFILE_LOG=$out/benches.log timeout -k 10 "$(limit 60)" \
    bash "$root/perf/profile_step.sh" "$out" >>"$out/benches.log" 2>&1
  note "profile_step: exit $? ($(cat "$out"/ncu_*.csv 2>/dev/null | grep -c gpu__time_duration) kernel times)"
fi

# Headline figures. bench_spec rows: method,kind,prompts,tokens,forwards,
# mean_accepted,seconds,tok_per_s,backend,dtype,temperature,loop,
# prefill_seconds (seconds: decoding only, so seconds / forwards is a step).
if [ -f "$out/benches.csv" ]; then
  awk -F, '$2 == "pooled" && ($1 == "ar" || $1 == "recycle-warm") {
      tps[$10, $1] = $8; step[$10, $1] = $7 / $5; acc[$10, $1] = $6; loop[$10] = $12 }
    END {
      split("f32 bf16", d, " ")
      for (i = 1; i <= 2; i++) {
        t = d[i]
        if (tps[t, "ar"] > 0 && tps[t, "recycle-warm"] > 0)
          printf "recycling vs plain, %s (%s): %.2fx tok/s; step %.1f / %.1f us = %.2fx; mean accepted %.2f\n",
            t, loop[t], tps[t, "recycle-warm"] / tps[t, "ar"], 1e6 * step[t, "recycle-warm"], 1e6 * step[t, "ar"],
            step[t, "recycle-warm"] / step[t, "ar"], acc[t, "recycle-warm"]
      }
    }' "$out/benches.csv" | while read -r line; do note "$line"; done
  # bench_forward's lines name their model: the B = 1 decode steps, eager
  # and graphed, and the graphed trees.
  grep -E "^[a-z0-9-]+ (decode B=1[: ]|tree of [0-9]+ nodes as a CUDA graph)" "$out/benches.log" |
    while read -r line; do note "forward: $line"; done
fi
gpu_end
