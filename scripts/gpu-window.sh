#!/usr/bin/env bash
# scripts/gpu-window.sh OUT [SECONDS] — one GPU window's work as a single
# command, in the order the project asks for it, within SECONDS (default 540):
#   1. tests/gpu/run.sh       every GPU suite (the code that has never run on
#                             a GPU first), the benches, the CLI, sanitizers;
#   2. perf/gpu_issues.sh     the suites and benches of compression, model
#                             drafts, fused groups and the TP cost model;
#   3. perf/gpu_step.sh       the speculative step's measurements;
#   4. perf/gpu_kernels.sh    attention's and acceptance's measurements.
# Each stage gets its own budget (DECO_GPU_BUDGET_S), cut to what is left of
# SECONDS; a stage that would get under 60 s is reported as not started.
# Runs from an unpacked kit: when the build (DECO_BUILD_DIR, default build/)
# has no bin/deco and the kit folder (DECO_GPU_KIT, default .gpu-kit/) holds
# a kit (scripts/gpu-kit.sh pack), it is unpacked there first. The build's
# environment (scripts/gpu-env.sh: PATH, LD_LIBRARY_PATH, the libraries this
# host lacks) is then set up once, here; the stages inherit it.
# Writes exactly two files into OUT, so that they fit what a remote run
# brings back: summary.txt (the environment's libraries line, one line per
# stage, then each stage's summary)
# and results.tgz (every stage's folder: logs, CSV, device.txt). Exit 0 only
# when every stage ran and passed.
set -u
out=${1:?usage: scripts/gpu-window.sh OUT [SECONDS]}
total=${2:-540}
case $total in '' | *[!0-9]*) echo "gpu-window: SECONDS must be a whole number, got '$total'" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DECO_BUILD_DIR:-$root/build}
kit=${DECO_GPU_KIT:-$root/.gpu-kit}
t0=$(date +%s)
mkdir -p "$out" || exit 2
summary=$out/summary.txt
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

if [ ! -x "$build/bin/deco" ] && [ -f "$kit/manifest.txt" ]; then
  if ! bash "$root/scripts/gpu-kit.sh" unpack "$kit" "$build" >"$out/unpack.log" 2>&1; then
    note "FAIL: unpacking $kit into $build (its last lines follow)"
    tail -n 20 "$out/unpack.log" >>"$summary"
    rm -f "$out/unpack.log"
    exit 1
  fi
  note "kit: $kit unpacked into $build"
  rm -f "$out/unpack.log"
fi

# The stages see the same build folder and find its environment set up
# (deco_gpu_env does nothing for the build DECO_GPU_ENV_BUILD names).
export DECO_BUILD_DIR=$build
. "$root/scripts/gpu-env.sh"
if ! deco_gpu_env "$build"; then
  note "FAIL: setting up the libraries of $build"
  exit 1
fi
note "$deco_gpu_env_note"

work=$(mktemp -d "${TMPDIR:-/tmp}/deco-gpu-window.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
status=0
# The stages' own summaries, appended after the one-line verdicts.
details=$work/details.txt
: >"$details"

# stage NAME WANT_S SCRIPT: runs SCRIPT OUTDIR with a budget of WANT_S
# seconds or what is left (less 15 s for packing), whichever is smaller.
stage() {
  local name=$1 want=$2 script=$3 left budget start rc
  left=$((total - ($(date +%s) - t0) - 15))
  budget=$((want < left ? want : left))
  if [ "$budget" -lt 60 ]; then
    note "stage $name: NOT STARTED ($left s left of $total)"
    status=1
    return
  fi
  start=$(date +%s)
  # The stage's own budget bounds its stages; timeout is the backstop.
  DECO_GPU_BUDGET_S=$budget timeout $((budget + 30)) bash "$root/$script" "$work/$name" >"$work/$name.console" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  note "stage $name ($script): exit $rc in $(($(date +%s) - start)) s of a $budget s budget"
  { echo; echo "===== $name"; cat "$work/$name/summary.txt" 2>/dev/null || tail -n 20 "$work/$name.console"; } >>"$details"
}

stage all 330 tests/gpu/run.sh
stage issues 150 perf/gpu_issues.sh
stage step 150 perf/gpu_step.sh
stage kernels 150 perf/gpu_kernels.sh

cat "$details" >>"$summary"
rm -f "$details"
if ! tar -czf "$out/results.tgz" -C "$work" .; then
  note "FAIL: packing results.tgz"
  status=1
fi
note "window: $([ $status -eq 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - t0)) s; results.tgz $(du -k "$out/results.tgz" 2>/dev/null | cut -f1) KiB"
exit $status
