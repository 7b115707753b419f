#!/usr/bin/env bash
# scripts/gpu-window.sh OUT [SECONDS] — one GPU window's work as a single
# command, in the order the project asks for it, within SECONDS (default 540):
#   1. tests/gpu/run.sh       every GPU suite (the code that has never run on
#                             a GPU first), the CLI, sanitizers (in a window
#                             its benches and profile are left to 3 and 4);
#   2. perf/gpu_issues.sh     the suites and benches of compression, model
#                             drafts, fused groups and the TP cost model;
#   3. perf/gpu_step.sh       the speculative step's measurements;
#   4. perf/gpu_kernels.sh    attention's and acceptance's measurements.
# Each stage gets its own budget (DECO_GPU_BUDGET_S), cut to what is left of
# SECONDS; a stage that would get under 60 s is reported as not started.
# A suite or sanitizer case that passed in an earlier stage is not run again
# (DECO_GPU_DONE). On a build unpacked from a kit that record lasts across
# calls, with the stages that passed: a second call on the same warm
# machine goes on where the first stopped (docs/GPU.md).
# Runs from a kit: when the kit folder (DECO_GPU_KIT, default .gpu-kit/)
# holds one (scripts/gpu-kit.sh pack) and the build (DECO_BUILD_DIR,
# default build/) has no bin/deco or was unpacked from another kit, it is
# unpacked there first. The build's environment (scripts/gpu-env.sh: PATH,
# LD_LIBRARY_PATH, the libraries this host lacks) is then set up once,
# here; the stages inherit it.
# Writes exactly two files into OUT, so that they fit what a remote run
# brings back, and rewrites them after each stage, so that a run cut short
# still brings back the stages it finished: summary.txt (the environment's
# libraries line, one line per stage, then each stage's summary) and
# results.tgz (every stage's folder: logs, CSV, device.txt). Exit 0 only
# when every stage ran and passed (in this call or an earlier one).
set -u
out=${1:?usage: scripts/gpu-window.sh OUT [SECONDS]}
total=${2:-540}
case $total in '' | *[!0-9]*) echo "gpu-window: SECONDS must be a whole number, got '$total'" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DECO_BUILD_DIR:-$root/build}
kit=${DECO_GPU_KIT:-$root/.gpu-kit}
t0=$(date +%s)
mkdir -p "$out" || exit 2
work=$(mktemp -d "${TMPDIR:-/tmp}/deco-gpu-window.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/stages"
summary=$out/summary.txt
# summary.txt is the window's own lines (verdicts) then the stages' own
# summaries, rewritten whole at each line.
verdicts=$work/verdicts.txt details=$work/details.txt
: >"$verdicts"
: >"$details"
publish() { cat "$verdicts" "$details" >"$summary"; }
note() { echo "$*" >>"$verdicts"; echo "$*"; publish; }
publish

# The kit's manifest begins with the lines the build keeps as
# kit-manifest.txt (commit, packing time...): another kit is a new build.
kit_is_new() {
  [ "$(head -n "$(wc -l <"$build/kit-manifest.txt")" "$kit/manifest.txt" 2>/dev/null)" != "$(cat "$build/kit-manifest.txt")" ]
}
if [ -f "$kit/manifest.txt" ] || [ -f "$kit/build.tar.xz" ]; then
  if [ ! -x "$build/bin/deco" ] || { [ -f "$build/kit-manifest.txt" ] && kit_is_new; }; then
    if ! bash "$root/scripts/gpu-kit.sh" unpack "$kit" "$build" >"$work/unpack.log" 2>&1; then
      note "FAIL: unpacking $kit into $build (its last lines follow)"
      tail -n 20 "$work/unpack.log" >>"$verdicts"
      publish
      exit 1
    fi
    note "kit: $kit unpacked into $build"
  fi
fi
if [ ! -x "$build/bin/deco" ]; then
  note "FAIL: $build has no bin/deco and $kit holds no kit (scripts/gpu-kit.sh pack; docs/GPU.md)"
  exit 1
fi
[ -f "$build/kit-manifest.txt" ] && note "build: from a kit: $(head -n 2 "$build/kit-manifest.txt" | paste -sd ';' - | sed 's/;/; /')"

# The stages see the same build folder and find its environment set up
# (deco_gpu_env does nothing for the build DECO_GPU_ENV_BUILD names).
export DECO_BUILD_DIR=$build
. "$root/scripts/gpu-env.sh"
if ! deco_gpu_env "$build"; then
  note "FAIL: setting up the libraries of $build"
  exit 1
fi
note "$deco_gpu_env_note"
# run.sh leaves its benches and profile to the step and kernels stages.
export DECO_GPU_WINDOW=1
# What passed (suites, sanitizer cases, stages): for a build unpacked from
# a kit, kept beside it for the next call on this machine (unpacking
# another kit removes it); otherwise for this call only. Its first line
# names the binaries it is about: a record of other binaries starts over.
if [ -f "$build/kit-manifest.txt" ]; then export DECO_GPU_DONE=$build/gpu-window-done.txt
else export DECO_GPU_DONE=$work/done.txt; fi
ident="binaries: $(cat "$build/bin/deco" "$build/lib/libdeco.so" 2>/dev/null | cksum)"
[ "$(head -n 1 "$DECO_GPU_DONE" 2>/dev/null)" = "$ident" ] || echo "$ident" >"$DECO_GPU_DONE"
status=0

# Rewrites results.tgz from the stages' folders (after each stage).
pack_results() {
  tar -czf "$out/results.tgz.tmp" -C "$work/stages" . && mv "$out/results.tgz.tmp" "$out/results.tgz"
}

# stage NAME WANT_S SCRIPT: runs SCRIPT OUTDIR with a budget of WANT_S
# seconds or what is left (less 15 s for packing), whichever is smaller;
# not again when it passed in an earlier call on this build.
stage() {
  local name=$1 want=$2 script=$3 left budget start rc
  if grep -qxF "stage $name" "$DECO_GPU_DONE"; then
    note "stage $name ($script): PASS in an earlier call on this build, not run again"
    return
  fi
  left=$((total - ($(date +%s) - t0) - 15))
  budget=$((want < left ? want : left))
  if [ "$budget" -lt 60 ]; then
    note "stage $name: NOT STARTED ($left s left of $total)"
    status=1
    return
  fi
  start=$(date +%s)
  # The stage's own budget bounds its steps; timeout is the backstop.
  DECO_GPU_BUDGET_S=$budget timeout -k 10 $((budget + 30)) bash "$root/$script" "$work/stages/$name" \
    >"$work/stages/$name.console" 2>&1
  rc=$?
  [ $rc -eq 0 ] && echo "stage $name" >>"$DECO_GPU_DONE" || status=1
  { echo; echo "===== $name"; cat "$work/stages/$name/summary.txt" 2>/dev/null || tail -n 20 "$work/stages/$name.console"; } >>"$details"
  note "stage $name ($script): exit $rc in $(($(date +%s) - start)) s of a $budget s budget"
  pack_results || { note "FAIL: packing results.tgz"; status=1; }
  # The library's instruction counts (cuobjdump, seconds on a full build):
  # the later stages' headers take the first one's line.
  if [ -z "${DECO_GPU_SASS:-}" ]; then
    DECO_GPU_SASS=$(grep -m 1 '^sass: ' "$work/stages/$name/summary.txt" 2>/dev/null) && export DECO_GPU_SASS
  fi
}

stage all 300 tests/gpu/run.sh
stage issues 150 perf/gpu_issues.sh
stage step 150 perf/gpu_step.sh
stage kernels 150 perf/gpu_kernels.sh

pack_results || { note "FAIL: packing results.tgz"; status=1; }
note "window: $([ $status -eq 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - t0)) s; results.tgz $(du -k "$out/results.tgz" 2>/dev/null | cut -f1) KiB"
exit $status
