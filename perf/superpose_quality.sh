#!/usr/bin/env bash
# perf/superpose_quality.sh [DECO] [SAMPLES] [MODEL CORPUS [PER_KIND]] —
# quality of superposed drafts, CPU. Without MODEL: stories260K (the
# built-in model) with an n-gram table counted from SAMPLES (default 3000)
# samples of the model's own text (T = 1, top-p 1, from BOS alone, seeds
# 1000.., 256 positions; no prompt of the corpus is in it). With MODEL (a
# GGUF file) and CORPUS (a text file): the table is counted from CORPUS's
# lines by `deco ngram build --model MODEL --text CORPUS` (SAMPLES unused),
# and only the first PER_KIND prompts of each kind run (default 3). Then
# for each prompt of perf/prompts/prompts.tsv 32 new tokens
# (--ignore-eos, so every draft has the same length) by
#   superpose  --superpose 3 with the table (k 3, m 9, tau 0.06, alpha 0.54)
#   superpose0 --superpose 3 --ngram-alpha 0 (no n-grams)
#   nucleus    3 samples, --temperature 1 --top-p 0.9, seeds 1-3
#   greedy     --temperature 0
# Each draft's perplexity under the model is its 32 tokens' NLL given the
# prompt, from `deco eval` on prompt+draft minus `deco eval` on the prompt.
# Prints per method: mean per-draft perplexity, pooled perplexity, and how
# often the 3 drafts of a prompt are all different / how many distinct, and
# the share of new positions where the 3 drafts are not all equal and the
# first such position.
set -euo pipefail
deco=${1:-build/bin/deco}
samples=${2:-3000}
model=${3:-}
corpus=${4:-}
per_kind=${5:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
margs=()
if [ -n "$model" ]; then
  [ -f "$corpus" ] || { echo "superpose_quality: MODEL needs a CORPUS text file" >&2; exit 2; }
  margs=(--model "$model")
  "$deco" ngram build "${margs[@]}" --text "$corpus" --out "$work/own.ngram" 2>&1 | tail -n 1
else
  per_kind=0
  for ((s = 1000; s < 1000 + samples; ++s)); do
    "$deco" generate --print-ids --temperature 1 --top-p 1 --seed "$s" --backend cpu 2>/dev/null
  done > "$work/own.ids"
  "$deco" ngram build --ids "$work/own.ids" --out "$work/own.ngram" 2>&1 | tail -n 1
fi
# NLL (sum, nats) of a one-line id file.
nll() {
  "$deco" eval "${margs[@]}" --ids "$1" --backend cpu 2>&1 | tail -n 1 |
    awk '{split($2, a, "="); split($3, b, "="); printf "%.9f %d\n", a[2] * log(b[2]), a[2]}'
}
: > "$work/rows"
: > "$work/div"
n=0
declare -A seen_kind
while IFS=$'\t' read -r kind text; do
  seen_kind[$kind]=$(( ${seen_kind[$kind]:-0} + 1 ))
  [ "$per_kind" -gt 0 ] && [ "${seen_kind[$kind]}" -gt "$per_kind" ] && continue
  n=$((n + 1))
  ids=$("$deco" tokenize "${margs[@]}" --text "$text")
  np=$(wc -w <<< "$ids")
  steps=$((np + 31))
  echo "$ids" > "$work/prompt.ids"
  read -r pn _ < <(nll "$work/prompt.ids")
  common=("${margs[@]}" --prompt "$text" --steps "$steps" --ignore-eos --print-ids --backend cpu)
  "$deco" generate "${common[@]}" --superpose 3 --ngram "$work/own.ngram" 2>/dev/null > "$work/superpose.out"
  "$deco" generate "${common[@]}" --superpose 3 --ngram-alpha 0 2>/dev/null > "$work/superpose0.out"
  for s in 1 2 3; do "$deco" generate "${common[@]}" --temperature 1 --top-p 0.9 --seed "$s" 2>/dev/null; done \
    > "$work/nucleus.out"
  "$deco" generate "${common[@]}" --temperature 0 2>/dev/null > "$work/greedy.out"
  for m in superpose superpose0 nucleus greedy; do
    distinct=$(sort -u "$work/$m.out" | wc -l)
    # Of the 3 drafts' 32 new positions: where they are not all equal, and
    # the first such position (32: never).
    awk -v m="$m" -v np="$np" '{ for (i = 1; i <= NF; ++i) id[NR, i] = $i; nf = NF }
      END { if (NR < 2) { print m, 0, 32; exit } diff = 0; first = 32;
        for (i = np + 1; i <= nf; ++i) { same = 1; for (r = 2; r <= NR; ++r) if (id[r, i] != id[1, i]) same = 0;
          if (!same) { diff++; if (first == 32) first = i - np - 1 } }
        print m, diff / (nf - np), first }' "$work/$m.out" >> "$work/div"
    while read -r line; do
      echo "$line" > "$work/one.ids"
      read -r fn ft < <(nll "$work/one.ids")
      echo "$m $n $distinct $(awk -v f="$fn" -v p="$pn" -v t="$((ft - np + 1))" 'BEGIN{printf "%.9f %d", f - p, t}')"
    done < "$work/$m.out" >> "$work/rows"
  done
done < perf/prompts/prompts.tsv
awk '{ share[$1] += $2; first[$1] += $3; n[$1]++ }
  END { printf "method,share_of_positions_where_drafts_differ,mean_first_divergence\n";
    split("superpose superpose0 nucleus", order, " ");
    for (i = 1; i <= 3; ++i) printf "%s,%.3f,%.2f\n", order[i], share[order[i]] / n[order[i]], first[order[i]] / n[order[i]] }' \
  "$work/div"
awk '
  { m = $1; nll = $4; t = $5; sum_ppl[m] += exp(nll / t); cnt[m]++; snll[m] += nll; st[m] += t;
    key = m SUBSEP $2; if (!(key in seen)) { seen[key] = 1; np[m]++; d[m] += $3; if ($3 == 3) alld[m]++ } }
  END {
    printf "method,drafts,mean_draft_ppl,pooled_ppl,tokens_per_draft,prompts,all_3_differ,mean_distinct\n";
    split("superpose superpose0 nucleus greedy", order, " ");
    for (i = 1; i <= 4; ++i) { m = order[i];
      printf "%s,%d,%.3f,%.3f,%.1f,%d,%.3f,%.2f\n", m, cnt[m], sum_ppl[m] / cnt[m], exp(snll[m] / st[m]),
             st[m] / cnt[m], np[m], alld[m] / np[m], d[m] / np[m] } }' "$work/rows"
