#!/usr/bin/env bash
# perf/spec_smollm2.sh [BUILD] [MODEL] — mean accepted tokens per forward of
# prompt lookup and Token Recycling (warm table) on SmolLM2-135M-Instruct,
# greedy and T = 0.7 (top-p 1), over the plain-text corpus (perf/prompts/,
# as continuations) and the chat set (perf/prompts-chat/, in the model's
# chat template): the first 3 prompts of each kind, 64 positions after each
# prompt, CPU f32, one thread per op. CSV rows of bench_spec on stdout.
set -euo pipefail
build=${1:-build}
model=${2:-models-cache/SmolLM2-135M-Instruct.Q4_1.gguf}
for set in corpus chat; do
  if [ "$set" = corpus ]; then args=(--prompts perf/prompts/prompts.tsv); else args=(--prompts perf/prompts-chat/prompts.tsv --chat); fi
  for t in 0 0.7; do
    echo "# $set temperature $t" >&2
    OMP_WAIT_POLICY=passive "$build/bin/bench_spec" --model "$model" "${args[@]}" --backend cpu --threads 1 \
      --new 64 --max-per-kind 3 --temperature "$t" --top-p 1 --methods lookup,recycle-warm | sed "s/^/$set,/"
  done
done
