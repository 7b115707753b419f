# perf/gpu_lib.sh — sourced by the GPU scripts (tests/gpu/run.sh, perf/gpu_step.sh,
# perf/gpu_kernels.sh, perf/gpu_issues.sh): the environment of a GPU host with a prebuilt,
# relocated build/ (as tests/gpu/run.sh expects it), a time budget, and the
# three kinds of stage those scripts run — a GPU suite, a compute-sanitizer
# check of one suite's small cases, a bench writing CSV. Every stage notes
# one line in $out/summary.txt; a failed stage sets status=1.
# The caller sets: out (the output folder), budget (seconds), and optionally
# targets (what --build builds), then calls gpu_begin "$@".

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${DECO_BUILD_DIR:-$root/build}
bin=$build/bin
export DECO_DATA_DIR=${DECO_DATA_DIR:-$root/data}
export DECO_MODELS_DIR=${DECO_MODELS_DIR:-$root/models-cache}
. "$root/scripts/gpu-env.sh"
deco_gpu_env "$build"
status=0
# A sanitizer run or bench skipped for time fails the run unless the caller
# set skips_fail=0 (tests/gpu/run.sh: reported only). A suite skipped for
# time always fails it.
skips_fail=${skips_fail:-1}
skipped() { [ "$skips_fail" = 0 ] || status=1; }

note() { echo "$*" | tee -a "$out/summary.txt"; }

# What passed earlier in this GPU window (scripts/gpu-window.sh sets
# DECO_GPU_DONE to a file that lasts across its stages and, on an unpacked
# kit, across its calls): a suite or sanitizer case listed there is not run
# again. Each passing one is added.
done_before() { [ -n "${DECO_GPU_DONE:-}" ] && [ -f "$DECO_GPU_DONE" ] && grep -qxF "$1" "$DECO_GPU_DONE"; }
done_now() { [ -z "${DECO_GPU_DONE:-}" ] || echo "$1" >>"$DECO_GPU_DONE"; }
left() { echo $((budget - ($(date +%s) - t_start))); }
limit() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }

# gpu_begin [--build]: the summary's header (device, commit, sass counts);
# with --build, first rebuilds $targets in $build (the library and benches
# need no Criterion; the suites must come prebuilt with build/criterion-rt).
gpu_begin() {
  t_start=$(date +%s)
  mkdir -p "$out"
  : >"$out/summary.txt"
  rm -f "$out/gpu_tests.log" "$out/benches.csv" "$out/benches.log" "$out/sanitizer.log"
  if [ "${1:-}" = --build ]; then
    local start=$(date +%s)
    if cmake --build "$build" --target ${targets:?} -j "$(nproc)" >"$out/build.log" 2>&1; then
      note "build: ${targets} ($(($(date +%s) - start)) s)"
    else
      note "FAIL: build of ${targets} (see build.log)"
      exit 1
    fi
  fi
  if command -v nvidia-smi >/dev/null 2>&1; then
    { nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; } \
      >"$out/device.txt" 2>&1 || true
  else
    echo "none found (no nvidia-smi on PATH)" >"$out/device.txt"
  fi
  note "device: $(head -n 1 "$out/device.txt")"
  note "commit: $(deco_gpu_commit "$root" "$build")"
  note "$deco_gpu_env_note"
  # The window counts the instructions once for all its stages (DECO_GPU_SASS).
  if [ -n "${DECO_GPU_SASS:-}" ]; then
    note "$DECO_GPU_SASS"
  elif command -v cuobjdump >/dev/null 2>&1 && [ -f "$build/lib/libdeco.so" ]; then
    note "$(deco_gpu_sass "$build")"
  fi
}


# gpu_suite NAME [LIMIT_S]: one GPU suite (Criterion), log to gpu_tests.log.
gpu_suite() {
  local name=$1 lim rc res start
  [ -x "$bin/$name" ] || { note "test  $name: MISSING"; status=1; return; }
  if done_before "suite $name"; then note "test  $name: PASS earlier in this window"; return; fi
  lim=$(limit "${2:-90}")
  if [ "$lim" -lt 10 ]; then note "test  $name: SKIPPED (time budget)"; status=1; return; fi
  start=$(date +%s)
  echo "=== $name" >>"$out/gpu_tests.log"
  timeout -k 10 "$lim" "$bin/$name" --jobs 1 >>"$out/gpu_tests.log" 2>&1
  rc=$?
  case $rc in
    0) res=PASS; done_now "suite $name" ;;
    77) res="NOT RUN (no device)"; status=1 ;;
    124 | 137) res=TIMEOUT; status=1 ;;
    *) res="FAIL ($rc)"; status=1 ;;
  esac
  note "test  $name: $res ($(($(date +%s) - start)) s)"
}

# gpu_sanitize TOOL NAME FILTER: compute-sanitizer (memcheck, racecheck) on
# the cases of one suite that FILTER names; log to sanitizer.log.
gpu_sanitize() {
  local tool=$1 name=$2 filter=$3 lim rc res log
  command -v compute-sanitizer >/dev/null 2>&1 || { note "$tool $name: sanitizer unavailable"; return; }
  [ -x "$bin/$name" ] || { note "$tool $name: MISSING"; status=1; return; }
  if done_before "$tool $name $filter"; then note "$tool $name $filter: clean earlier in this window"; return; fi
  if done_before "timeout $tool $name $filter"; then
    note "$tool $name $filter: out of time earlier in this window, not run again"; skipped; return
  fi
  lim=$(limit 90)
  if [ "$lim" -lt 10 ]; then note "$tool $name: SKIPPED (time budget)"; skipped; return; fi
  log=$(mktemp)
  timeout -k 10 "$lim" compute-sanitizer --tool "$tool" --report-api-errors no --target-processes all \
    "$bin/$name" --jobs 1 --filter "$filter" >"$log" 2>&1
  rc=$?
  { echo "=== $tool $name $filter"; cat "$log"; } >>"$out/sanitizer.log"
  # A finding fails the run whatever ended it; only a run that found
  # nothing before its time ran out is no verdict. Findings: memcheck's
  # "Invalid ..." accesses, racecheck's hazards, a non-zero summary (not
  # the sanitizer's own "Error: process didn't terminate successfully",
  # which a timeout's signal makes it print).
  local found=0
  if grep -Eq "ERROR SUMMARY: [1-9]|RACECHECK SUMMARY: [1-9]|========= (Invalid|Race|Error: Race)" "$log"; then
    found=1
  fi
  if grep -q "Device not supported\|error 999" "$log"; then res="sanitizer unavailable"
  elif grep -q "Tested: 0 " "$log"; then res="NO TEST MATCHED $filter"; status=1
  elif [ $found -eq 1 ]; then res="FAIL ($rc)"; status=1
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    # Out of time under the sanitizer's slowdown, nothing found so far.
    res="TIMEOUT after $lim s (nothing found so far, no verdict)"; skipped
    # Recorded (not run again) only when it had its full 90 s, not the end
    # of a stage's budget.
    [ "$lim" -lt 90 ] || done_now "timeout $tool $name $filter"
  elif [ $rc -eq 0 ] && grep -q "ERROR SUMMARY: 0 errors\|RACECHECK SUMMARY: 0 hazards" "$log"; then
    res=clean; done_now "$tool $name $filter"
  else res="FAIL ($rc)"; status=1; fi
  rm -f "$log"
  note "$tool $name $filter: $res"
}

# gpu_bench LIMIT_S BENCH ARGS...: CSV rows to benches.csv (after a "# ..."
# line naming the command), diagnostics to benches.log. Returns the bench's
# exit status, 127 when it is missing, 125 when skipped for time.
gpu_bench() {
  local lim rc start
  lim=$(limit "$1")
  shift
  [ -x "$bin/$1" ] || { note "bench $1: MISSING"; status=1; return 127; }
  if [ "$lim" -lt 10 ]; then note "bench $*: SKIPPED (time budget)"; skipped; return 125; fi
  start=$(date +%s)
  echo "# $*" >>"$out/benches.csv"
  echo "=== $*" >>"$out/benches.log"
  timeout -k 10 "$lim" "$bin/$1" "${@:2}" >>"$out/benches.csv" 2>>"$out/benches.log"
  rc=$?
  [ $rc -eq 0 ] || status=1
  # The summary names files relative to the repository.
  note "bench ${*//"$root/"/}: exit $rc ($(($(date +%s) - start)) s)"
  return $rc
}

gpu_end() {
  note "overall: $([ $status -eq 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - t_start)) s"
  exit $status
}
