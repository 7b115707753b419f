#!/usr/bin/env bash
# perf/draft_sweep.sh — the issue-18 acceptance sweep: model drafts (layer
# subsets of the target, chains and top-w trees) beside Token Recycling
# (cold table) on perf/prompts/, greedy and at T = 0.7 (top-p off), one
# bench_draft run per configuration; pooled CSV rows on stdout.
#   perf/draft_sweep.sh BUILD_DIR stories|smollm2 [MODELS_DIR] [lp]
# With lp: the issue-19 sweep instead — layer-parallel drafts (N = 1, 2,
# 4; 3 on stories260K, which has 3 middle layers) of the full target and of
# a layer subset, chains of 4, with and without KV calibration.
# stories: stories260K, 35 prompts x 256 positions. smollm2: the Q4_1 GGUF
# (dequantised to f32), the first prompt of each kind x 48 positions.
set -euo pipefail
bin="$1/bin/bench_draft"
which="$2"
models="${3:-models-cache}"
export OMP_NUM_THREADS=1
if [ "$which" = stories ]; then
  base=(--model data/models/stories260K.bin --tokenizer data/models/tok512.bin --steps 256)
  subsets=("0,4" "0,2,4" "0,1,3,4" "0-4")
  best="0,2,4"
  lp_drafts=("0-4:1 2 3" "0,1,2,4:1 2")
else
  base=(--model "$models/SmolLM2-135M-Instruct.Q4_1.gguf" --per-kind 1 --steps 48)
  subsets=("0-7,22-29" "0-11,18-29" "0-13,16-29" "0-29")
  best="0-13,16-29"
  lp_drafts=("0-29:1 2 4" "0-13,16-29:2 4")
fi
run() { "$bin" "${base[@]}" "$@" 2>/dev/null | grep ',pooled,'; }
if [ "${4:-}" = lp ]; then
  for t in 0 0.7; do
    for d in "${lp_drafts[@]}"; do
      layers="${d%%:*}"
      for n in ${d#*:}; do
        for nc in 0 1; do
          [ "$n" = 1 ] && [ "$nc" = 1 ] && continue
          run --temperature "$t" --top-p 1 --method draft --draft-layers "$layers" --draft-len 4 \
            --layer-parallel "$n" --no-calibrate "$nc" --label "layers=$layers;chain4;N=$n;calibrate=$((1 - nc))"
        done
      done
    done
  done
  exit 0
fi
for t in 0 0.7; do
  run --temperature "$t" --top-p 1 --method recycle --label "recycle-cold"
  for s in "${subsets[@]}"; do
    run --temperature "$t" --top-p 1 --method draft --draft-layers "$s" --draft-len 4 --label "layers=$s;chain4"
  done
  for k in 2 8; do
    run --temperature "$t" --top-p 1 --method draft --draft-layers "$best" --draft-len "$k" --label "layers=$best;chain$k"
  done
  for kn in "4 16" "6 32" "8 64"; do
    set -- $kn
    run --temperature "$t" --top-p 1 --method draft --draft-layers "$best" --draft-len "$1" --draft-width 4 \
      --tree-nodes "$2" --label "layers=$best;tree$2(K=$1,W=4)"
  done
done
