#!/usr/bin/env bash
# tests/gpu/run.sh DIR — on a GPU host with a prebuilt, relocated build/ and
# the data folder ($DECO_DATA_DIR with models/ and fixtures/): runs the GPU
# test suites, then the benches, then compute-sanitizer (memcheck, racecheck)
# on a small-shape subset, writing logs and CSV into DIR as it goes and a
# summary last. Fails (does not skip) when the data is missing. The whole run
# keeps to DECO_GPU_BUDGET_S seconds (default 280): a stage that would start
# too late is reported as skipped for time.
#   DECO_DATA_DIR=.data tests/gpu/run.sh out/
# Files written (flat): device.txt gpu_tests.log benches.csv benches.log
# sanitizer.log summary.txt
set -u
out=${1:?usage: tests/gpu/run.sh DIR}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${DECO_BUILD_DIR:-$root/build}
bin=$build/bin
export DECO_DATA_DIR=${DECO_DATA_DIR:-$root/.data}
export DECO_REQUIRE_DATA=1
cuda_lib=$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")/../lib64
export LD_LIBRARY_PATH=$build/criterion-rt:$build/lib:$cuda_lib:${LD_LIBRARY_PATH:-}
budget=${DECO_GPU_BUDGET_S:-280}
t_start=$(date +%s)
summary=$out/summary.txt
: >"$summary"
rm -f "$out/gpu_tests.log" "$out/benches.csv" "$out/benches.log" "$out/sanitizer.log"
note() { echo "$*" | tee -a "$summary"; }
left() { echo $(( budget - ($(date +%s) - t_start) )); }
# timeout for a stage: its own limit, or what is left of the budget
limit() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }

for f in models/stories260K.bin models/tok512.bin fixtures/stories260K/greedy_bos_256.ids \
         fixtures/stories260K/logits_bos_32.f32 fixtures/token_recycling_template_80.txt; do
  if [ ! -f "$DECO_DATA_DIR/$f" ]; then
    note "FAIL: data file $DECO_DATA_DIR/$f is missing (set DECO_DATA_DIR)"
    exit 1
  fi
done
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; } \
  >"$out/device.txt" 2>&1 || true
note "device: $(head -n 1 "$out/device.txt")"
if command -v cuobjdump >/dev/null 2>&1; then
  sass=$(cuobjdump --dump-sass "$build/lib/libdeco.so" 2>/dev/null)
  note "sass: HMMA $(grep -c HMMA <<<"$sass") HGMMA $(grep -c HGMMA <<<"$sass") LDL $(grep -c 'LDL' <<<"$sass") STL $(grep -c 'STL' <<<"$sass")"
fi
status=0

# 1. GPU test suites, one at a time.
for t in "$bin"/gpu_test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  lim=$(limit 150)
  if [ "$lim" -lt 10 ]; then note "test  $name: SKIPPED (time budget)"; status=1; continue; fi
  start=$(date +%s)
  echo "=== $name" >>"$out/gpu_tests.log"
  timeout "$lim" "$t" --jobs 1 >>"$out/gpu_tests.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then res=PASS; elif [ $rc -eq 77 ]; then res="NOT RUN (no device)"; status=1;
  elif [ $rc -eq 124 ]; then res="TIMEOUT"; status=1; else res="FAIL ($rc)"; status=1; fi
  note "test  $name: $res ($(( $(date +%s) - start )) s)"
done

# 2. The CLI on the GPU, greedy stories260K in f32 and bf16, plain and with
# prompt lookup (ids under the near-tie rule are checked by the suites).
for dt in f32 bf16; do
  for spec in none lookup recycle; do
    lim=$(limit 60)
    if [ "$lim" -lt 10 ]; then note "cli   $dt $spec: SKIPPED (time budget)"; status=1; continue; fi
    timeout "$lim" "$bin/deco" generate --backend cuda --dtype $dt --model "$DECO_DATA_DIR/models/stories260K.bin" \
      --tokenizer "$DECO_DATA_DIR/models/tok512.bin" --prompt "Once upon a time" --temperature 0 \
      --spec $spec >"$out/cli.txt" 2>&1
    rc=$?
    [ $rc -eq 0 ] || status=1
    note "cli   $dt $spec: exit $rc $(tail -n 1 "$out/cli.txt")"
    { echo "=== cli $dt $spec"; cat "$out/cli.txt"; } >>"$out/gpu_tests.log"
  done
done
rm -f "$out/cli.txt"

# 3. Benches: CSV rows on stdout, diagnostics on stderr.
for b in "$bin"/bench_*; do
  [ -x "$b" ] || continue
  name=$(basename "$b")
  lim=$(limit 90)
  if [ "$lim" -lt 10 ]; then note "bench $name: SKIPPED (time budget)"; continue; fi
  start=$(date +%s)
  echo "# $name" >>"$out/benches.csv"
  echo "=== $name" >>"$out/benches.log"
  timeout "$lim" "$b" >>"$out/benches.csv" 2>>"$out/benches.log"
  rc=$?
  [ $rc -eq 0 ] || status=1
  note "bench $name: exit $rc ($(( $(date +%s) - start )) s)"
done

# Llama-3-8B shape: t_verify(81 nodes) / t_decode at batch 1 (issue target <= 1.3).
lim=$(limit 90)
if [ -x "$bin/bench_forward" ] && [ "$lim" -ge 30 ]; then
  echo "# bench_forward --model llama3-8b" >>"$out/benches.csv"
  echo "=== bench_forward --model llama3-8b" >>"$out/benches.log"
  timeout "$lim" "$bin/bench_forward" --model llama3-8b --reps 20 >>"$out/benches.csv" 2>>"$out/benches.log"
  note "bench bench_forward llama3-8b: exit $?"
fi

# 4. compute-sanitizer on a small-shape test of each suite.
subset=("gpu_test_ops_cuda:*/small_ops" "gpu_test_tree_attention:*/bad_data_mma"
  "gpu_test_accept_cuda:*/greedy_small_vocab_ties" "gpu_test_kv_compact_cuda:*/overlapping_f32"
  "gpu_test_forward_cuda:*/synthetic_weights_identical_on_both_backends" "gpu_test_recycle_cuda:*/small*"
  "gpu_test_graph_cuda:*/small_plain_greedy")
if command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck; do
    for entry in "${subset[@]}"; do
      name=${entry%%:*}; filter=${entry#*:}
      [ -x "$bin/$name" ] || continue
      lim=$(limit 60)
      if [ "$lim" -lt 10 ]; then note "$tool $name: SKIPPED (time budget)"; continue; fi
      log=$(mktemp)
      timeout "$lim" compute-sanitizer --tool $tool --report-api-errors no --target-processes all \
        "$bin/$name" --jobs 1 --filter "$filter" >"$log" 2>&1
      rc=$?
      { echo "=== $tool $name $filter"; cat "$log"; } >>"$out/sanitizer.log"
      if grep -q "Device not supported\|error 999" "$log"; then res="sanitizer unavailable"
      elif grep -q "Tested: 0 " "$log"; then res="NO TEST MATCHED $filter"; status=1
      elif [ $rc -eq 0 ] && grep -q "ERROR SUMMARY: 0 errors\|RACECHECK SUMMARY: 0 hazards" "$log" \
           && ! grep -q "========= Invalid\|========= Race\|========= Error" "$log"; then res="clean"
      else res="FAIL ($rc)"; status=1; fi
      rm -f "$log"
      note "$tool $name: $res"
    done
  done
else
  note "compute-sanitizer: sanitizer unavailable"
fi
note "overall: $([ $status -eq 0 ] && echo PASS || echo FAIL) in $(( $(date +%s) - t_start )) s"
exit $status
