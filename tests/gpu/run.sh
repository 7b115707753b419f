#!/usr/bin/env bash
# tests/gpu/run.sh DIR — on a GPU host with a prebuilt, relocated build/ and
# the repository's data/ folder (or $DECO_DATA_DIR with the same layout): runs the GPU
# test suites (the step and recycling suites first), the benches (the
# evaluation first), the CLI (greedy ids against the CPU's), compute-sanitizer
# (memcheck, racecheck) on a small-shape subset, then Nsight Compute kernel
# times of the decoding steps, writing logs and CSV into DIR as it goes and a
# summary last. Fails (does not skip) when the data is missing. The whole run
# keeps to DECO_GPU_BUDGET_S seconds (default 360; it took about 320 on an
# H100): a stage that would start too late is reported as skipped for time,
# which fails the run only for a test suite. Under scripts/gpu-window.sh
# (DECO_GPU_WINDOW=1) the benches and the profile are left to the window's
# later stages, and a suite or sanitizer case that passed earlier in the
# window (DECO_GPU_DONE, perf/gpu_lib.sh) is not run again.
#   tests/gpu/run.sh out/
# Files written (flat): device.txt gpu_tests.log benches.csv benches.log
# sanitizer.log summary.txt, and ncu_recycle.csv ncu_plain.csv when Nsight
# Compute is there (perf/profile_step.sh)
set -u
out=${1:?usage: tests/gpu/run.sh DIR}
budget=${DECO_GPU_BUDGET_S:-360}
# A bench, CLI or sanitizer run skipped for time is reported, not failed
# (perf/gpu_lib.sh's skipped); a suite skipped for time fails the run.
skips_fail=0
# The environment (scripts/gpu-env.sh: PATH, LD_LIBRARY_PATH, a kit's
# libraries this host lacks), the summary's header and the stage helpers.
. "$(dirname "$0")/../../perf/gpu_lib.sh"
gpu_begin
for f in models/stories260K.bin models/tok512.bin fixtures/stories260K/greedy_bos_256.ids \
         fixtures/stories260K/logits_bos_32.f32 fixtures/token_recycling_template_80.txt; do
  if [ ! -f "$DECO_DATA_DIR/$f" ]; then
    note "FAIL: data file $DECO_DATA_DIR/$f is missing (set DECO_DATA_DIR)"
    exit 1
  fi
done
# The mini SmolLM2 of the GGUF suite (scripts/gguf/make_mini.py, 23.2 MiB):
# models-cache/ of the copied tree (carried with it: git ignores it).
if [ ! -f "$DECO_MODELS_DIR/SmolLM2-135M-mini.gguf" ]; then
  note "FAIL: $DECO_MODELS_DIR/SmolLM2-135M-mini.gguf is missing (scripts/gguf/make_mini.py; set DECO_MODELS_DIR)"
  exit 1
fi

# 1. GPU test suites, one at a time: the suites that have never run on a
# GPU first (newest code), then the ones that have, then any other.
suites=()
for t in draft_chain_cuda draft_model_cuda graph_vs_cpu spec_step_cuda plan_cuda schedule_cuda gguf_cuda \
  superpose_cuda compress_cuda layer_fused_cuda kv_compact_cuda ops_harness tp_nccl \
  graph_cuda spec_cuda recycle_cuda forward_cuda accept_cuda tree_attention ops_cuda; do
  suites+=("$bin/gpu_test_$t")
done
for t in "$bin"/gpu_test_*; do
  case " ${suites[*]} " in *" $t "*) ;; *) suites+=("$t") ;; esac
done
ran=0
for t in "${suites[@]}"; do
  [ -x "$t" ] || continue
  ran=$((ran + 1))
  gpu_suite "$(basename "$t")" 120
done
[ "$ran" -gt 0 ] || { note "FAIL: no gpu_test_* executables in $bin"; status=1; }

# 2. Benches, the evaluation first: CSV rows on stdout, diagnostics on stderr.
# In a window (scripts/gpu-window.sh sets DECO_GPU_WINDOW=1) its step and
# kernels stages time the step and the kernels instead, after the suites,
# the CLI and the sanitizers here and the never-run benches of its issues
# stage.
# bench_spec: stories260K in f32 (comparable with the CPU tables), greedy and
# at temperature 0.7; bench_forward --model llama3-8b: t_verify(81) / t_decode;
# then bench_spec in bf16 (the CLI's default dtype on the GPU).
model=$DECO_DATA_DIR/models/stories260K.bin
tokenizer=$DECO_DATA_DIR/models/tok512.bin
spec_args="--backend cuda --dtype f32 --model $model --tokenizer $tokenizer --prompts $root/perf/prompts/prompts.tsv"
spec_bf16=${spec_args/--dtype f32/--dtype bf16}
benches=("bench_spec $spec_args" "bench_spec $spec_args --temperature 0.7" "bench_forward --model llama3-8b --reps 20"
  "bench_spec $spec_bf16" "bench_spec $spec_bf16 --temperature 0.7"
  "bench_recycle" "bench_ops" "bench_tree_attention" "bench_forward" "bench_accept")
[ "${DECO_GPU_WINDOW:-0}" = 1 ] && { note "benches: left to the window's step and kernels stages"; benches=(); }
for entry in ${benches[@]+"${benches[@]}"}; do
  read -r -a cmd <<<"$entry"
  gpu_bench 90 "${cmd[@]}"
  rc=$?
  # If the graphed loop fails, the evaluation still gets numbers from the
  # eager device-resident loop, then from the host loop (the CSV says which);
  # not after a timeout (124, 137: the other loops are slower) nor a skip.
  if [ "${cmd[0]}" = bench_spec ] && [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 137 ] && [ $rc -ne 125 ] &&
    [ $rc -ne 127 ]; then
    for loop in device host; do
      gpu_bench 90 "${cmd[@]}" --loop $loop && break
      [ $? -ne 125 ] || break
    done
  fi
done

# 3. The CLI on the GPU, greedy stories260K in f32 and bf16: plain, prompt
# lookup and Token Recycling with --print-ids, each against the CPU's ids for
# the same arguments (--backend cpu --dtype f32). f32 must give the CPU's ids
# exactly: a difference fails the run and both lines are printed (near ties
# are the suites' business; graph_vs_cpu judges them). bf16 only reports
# whether its ids differ. Recycling also against plain decoding
# (--compare-ar: speedup=).
cli_args=(--model "$DECO_DATA_DIR/models/stories260K.bin" --tokenizer "$DECO_DATA_DIR/models/tok512.bin"
  --prompt "Once upon a time" --temperature 0 --ignore-eos)
# first_diff A B: the first index at which two --print-ids lines differ; nothing when equal.
first_diff() {
  local -a a b
  local i n
  read -r -a a <"$1"
  read -r -a b <"$2"
  n=${#a[@]}
  [ ${#b[@]} -gt "$n" ] && n=${#b[@]}
  for ((i = 0; i < n; i++)); do
    [ "${a[i]:-(none)}" = "${b[i]:-(none)}" ] || { echo "$i"; return; }
  done
}
for spec in none lookup recycle; do
  ref=$out/cli_cpu_$spec.ids
  rm -f "$ref"
  lim=$(limit 60)
  if [ "$lim" -lt 10 ]; then note "cli   cpu f32 $spec: SKIPPED (time budget)"; skipped; continue; fi
  timeout -k 10 "$lim" "$bin/deco" generate --backend cpu --dtype f32 "${cli_args[@]}" --spec $spec --print-ids \
    >"$ref" 2>"$out/cli.txt"
  rc=$?
  [ $rc -eq 0 ] || { status=1; rm -f "$ref"; }
  note "cli   cpu f32 $spec: exit $rc $(tail -n 1 "$out/cli.txt")"
  { echo "=== cli cpu f32 $spec"; cat "$out/cli.txt"; } >>"$out/gpu_tests.log"
done
for dt in f32 bf16; do
  for spec in none lookup recycle "recycle --compare-ar"; do
    lim=$(limit 60)
    if [ "$lim" -lt 10 ]; then note "cli   $dt $spec: SKIPPED (time budget)"; skipped; continue; fi
    print=()
    [ "$spec" = "recycle --compare-ar" ] || print=(--print-ids)
    timeout -k 10 "$lim" "$bin/deco" generate --backend cuda --dtype $dt "${cli_args[@]}" --spec $spec \
      ${print[@]+"${print[@]}"} >"$out/cli.out" 2>"$out/cli.txt"
    rc=$?
    [ $rc -eq 0 ] || status=1
    ids="" pos="" at=""
    ref=$out/cli_cpu_$spec.ids
    if [ ${#print[@]} -gt 0 ] && [ $rc -eq 0 ]; then
      if [ ! -s "$ref" ]; then
        ids="no cpu ids to compare with"
        [ $dt = f32 ] && { ids="$ids: FAIL"; status=1; }
      else
        pos=$(first_diff "$ref" "$out/cli.out")
        [ -z "$pos" ] || at="from index $pos (the forward at position $((pos - 1)))"
        if [ -z "$pos" ]; then ids="ids equal to the cpu's"
        elif [ $dt = f32 ]; then ids="ids DIFFER from the cpu's $at: FAIL"; status=1
        else ids="ids differ from the cpu's $at (bf16: reported, not failed)"; fi
      fi
    fi
    note "cli   $dt $spec: exit $rc${ids:+, $ids}; $(tail -n 1 "$out/cli.txt")"
    if [ -n "$pos" ] && [ $dt = f32 ]; then
      note "      cpu:  $(cat "$ref")"
      note "      cuda: $(cat "$out/cli.out")"
    fi
    { echo "=== cli $dt $spec"; cat "$out/cli.out" "$out/cli.txt"; } >>"$out/gpu_tests.log"
  done
done
rm -f "$out/cli.txt" "$out/cli.out" "$out"/cli_cpu_*.ids

# 4. compute-sanitizer on a small-shape test of each suite (racecheck: all but
# the graph suite), the kernels that have never run on a GPU first: top-k
# rows and the draft chain, dequantization, kv_gram, the superposed
# decoding ops, the batched matmul of fused layer groups.
subset=("gpu_test_draft_chain_cuda:*/matches_reference" "gpu_test_gguf_cuda:*/dequant_bitwise_against_reference"
  "gpu_test_compress_cuda:*/kv_gram_matches_twin" "gpu_test_superpose_cuda:*/*_matches_reference"
  "gpu_test_layer_fused_cuda:*/batched_matmul_matches_the_cpu" "gpu_test_ops_harness:*/small_ops"
  "gpu_test_ops_cuda:*/small_ops" "gpu_test_tree_attention:*/bad_data_mma"
  "gpu_test_accept_cuda:*/greedy_small_vocab_ties" "gpu_test_kv_compact_cuda:*/overlapping_f32"
  "gpu_test_kv_compact_cuda:*/missing_page_spares_other_trees"
  "gpu_test_forward_cuda:*/synthetic_weights_identical_on_both_backends" "gpu_test_recycle_cuda:*/small_pipeline"
  "gpu_test_graph_cuda:*/small_recycle_greedy")
if command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck; do
    for entry in "${subset[@]}"; do
      name=${entry%%:*}; filter=${entry#*:}
      [ -x "$bin/$name" ] || continue
      # The graphed step launches no kernel of its own: racecheck sees its
      # kernels in the other suites, and ran past 90 s on the graph suite's
      # smallest case (H100); memcheck covers the capture and the replays.
      [ "$tool" = racecheck ] && [ "$name" = gpu_test_graph_cuda ] && continue
      gpu_sanitize $tool "$name" "$filter"
    done
  done
else
  note "compute-sanitizer: sanitizer unavailable"
fi
# 5. Kernel times of the decoding steps (Nsight Compute), if there is time
# (in a window, the step stage profiles them).
if [ "${DECO_GPU_WINDOW:-0}" != 1 ] && command -v ncu >/dev/null 2>&1 && [ "$(left)" -ge 40 ]; then
  DECO_PROFILE_LOG=$out/benches.log timeout -k 10 "$(limit 60)" bash "$root/perf/profile_step.sh" "$out" >>"$out/benches.log" 2>&1
  note "profile_step: exit $? ($(cat "$out"/ncu_*.csv 2>/dev/null | grep -c gpu__time_duration) kernel times)"
fi
gpu_end
