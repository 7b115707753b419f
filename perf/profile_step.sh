#!/usr/bin/env bash
# perf/profile_step.sh DIR — per-kernel GPU time (Nsight Compute,
# gpu__time_duration) of stories260K's decoding steps: the Token Recycling
# step and the plain decoding step, both from the graph-captured device loop
# of `deco generate`. A captured graph's kernels are profiled one by one, so
# the figures are kernel times without the gaps between launches; the step
# times from bench_spec minus their sum give the launch overhead.
#   perf/profile_step.sh out/   ->  out/ncu_recycle.csv out/ncu_plain.csv
# (ncu's own messages go to out/ncu.log, or to DECO_PROFILE_LOG).
set -u
out=${1:?usage: perf/profile_step.sh DIR}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DECO_BUILD_DIR:-$root/build}
data=${DECO_DATA_DIR:-$root/data}
. "$root/scripts/gpu-env.sh"
deco_gpu_env "$build"
command -v ncu >/dev/null || { echo "profile_step: ncu not found" >&2; exit 1; }
gen=("$build/bin/deco" generate --backend cuda --dtype "${DECO_PROFILE_DTYPE:-f32}" --model "$data/models/stories260K.bin"
  --tokenizer "$data/models/tok512.bin" --prompt "Once upon a time" --temperature 0 --ignore-eos --steps 24)
log=${DECO_PROFILE_LOG:-$out/ncu.log}
status=0
for run in "recycle:--spec recycle" "plain:--spec none --compare-ar"; do
  name=${run%%:*}
  read -r -a extra <<<"${run#*:}"
  timeout -k 10 150 ncu --csv --print-units base --clock-control none --metrics gpu__time_duration.sum \
    --launch-count 1200 "${gen[@]}" "${extra[@]}" >"$out/ncu_$name.csv" 2>>"$log" || status=1
  echo "profile_step $name: $(grep -c gpu__time_duration "$out/ncu_$name.csv") kernels profiled"
done
exit $status
