#!/usr/bin/env bash
# tests/gpu/run.sh DIR — on a GPU host with a prebuilt, relocated build/ and
# the data folder ($DECO_DATA_DIR with models/ and fixtures/): runs the GPU
# test suites, then the benches, then compute-sanitizer (memcheck, racecheck)
# on a small-shape subset, writing logs and CSV into DIR as it goes, and a
# summary last. Fails (does not skip) when the data is missing.
#   DECO_DATA_DIR=.data tests/gpu/run.sh out/
# Files written (few, flat): device.txt gpu_tests.log benches.csv benches.log
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
summary=$out/summary.txt
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

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
status=0

# 1. GPU test suites, one at a time.
for t in "$bin"/gpu_test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  start=$(date +%s)
  echo "=== $name" >>"$out/gpu_tests.log"
  timeout 240 "$t" --jobs 1 >>"$out/gpu_tests.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then res=PASS; elif [ $rc -eq 77 ]; then res="NOT RUN (no device)"; status=1;
  elif [ $rc -eq 124 ]; then res="TIMEOUT"; status=1; else res="FAIL ($rc)"; status=1; fi
  note "test  $name: $res ($(( $(date +%s) - start )) s)"
done

# 2. The CLI on the GPU: greedy stories260K, f32 and bf16 (ids are checked
# under the near-tie rule by the forward suite; this shows the end to end run).
for dt in f32 bf16; do
  "$bin/deco" generate --backend cuda --dtype $dt --model "$DECO_DATA_DIR/models/stories260K.bin" \
    --tokenizer "$DECO_DATA_DIR/models/tok512.bin" --prompt "Once upon a time" --temperature 0 \
    >"$out/cli_$dt.txt" 2>&1
  note "cli   $dt: exit $? $(tail -n 1 "$out/cli_$dt.txt")"
  head -c 300 "$out/cli_$dt.txt" >>"$out/gpu_tests.log"; rm -f "$out/cli_$dt.txt"
done

# 3. Benches: CSV rows on stdout, diagnostics on stderr.
for b in "$bin"/bench_*; do
  [ -x "$b" ] || continue
  name=$(basename "$b")
  start=$(date +%s)
  echo "# $name" >>"$out/benches.csv"
  timeout 180 "$b" >>"$out/benches.csv" 2>>"$out/benches.log"
  rc=$?
  [ $rc -eq 0 ] || status=1
  note "bench $name: exit $rc ($(( $(date +%s) - start )) s)"
done

# 4. compute-sanitizer on the small-shape subset of each suite.
if command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck; do
    for t in "$bin"/gpu_test_*; do
      [ -x "$t" ] || continue
      name=$(basename "$t")
      echo "=== $tool $name" >>"$out/sanitizer.log"
      timeout 120 compute-sanitizer --tool $tool --report-api-errors no --target-processes all \
        "$t" --jobs 1 --filter '*/small*' >>"$out/sanitizer.log" 2>&1
      rc=$?
      errs=$(grep -c "========= ERROR\|========= Invalid\|========= Race" "$out/sanitizer.log" || true)
      if grep -q "Device not supported\|error 999" "$out/sanitizer.log"; then res="sanitizer unavailable";
      elif [ $rc -eq 0 ]; then res="clean"; else res="FAIL ($rc)"; status=1; fi
      note "$tool $name: $res"
    done
  done
else
  note "compute-sanitizer: sanitizer unavailable"
fi
note "overall: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
