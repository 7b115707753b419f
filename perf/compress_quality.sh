#!/usr/bin/env bash
# perf/compress_quality.sh DECO OUTDIR [stories|smollm2|all] — the quality
# measurements of KV-head compression (issue 16; perf/NOTES.md): for each
# model and KV-head ratio, deco compress with svd, mean and keep, then
# deco eval of the result against the original (ppl, KL(orig || compressed),
# top-1 agreement), one line per run on stdout.
#   stories260K: calibration = 200 samples of the original at T = 1, top-p 1
#     (seeds 1..200, first 8192 ids); evaluation = 100 samples from seeds
#     100001..100100 (disjoint seeds).
#   SmolLM2-135M-Instruct Q4_1 (models-cache/): calibration = the GPL-3 text
#     of Debian's base-files (/usr/share/common-licenses/GPL-3), evaluation =
#     its Apache-2.0 text (a disjoint file), both encoded with the model's
#     own vocabulary.
# The original's ppl is eval's ref_ppl.
# Runs on the CPU backend (--backend cpu); every file it makes goes to OUTDIR.
set -euo pipefail
DECO=${1:?usage: perf/compress_quality.sh DECO OUTDIR [stories|smollm2|all]}
OUT=${2:?usage: perf/compress_quality.sh DECO OUTDIR [stories|smollm2|all]}
WHICH=${3:-all}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
evalline() { # model ref ids -> "ppl=.. kl=.. top1=.."
  "$DECO" eval --backend cpu --model "$1" --ref "$2" --ids "$3" 2>&1 | tail -1
}
run_set() { # name model calib_ids eval_ids kv_heads...
  local name=$1 model=$2 calib=$3 evalids=$4
  shift 4
  for n in "$@"; do
    for m in svd mean keep; do
      local o="$OUT/${name}_kv${n}_${m}.${model##*.}"
      "$DECO" compress --backend cpu --model "$model" --kv-heads "$n" --method "$m" --calib-ids "$calib" \
        --calib-tokens 8192 --out "$o" --force 2> "$o.log"
      echo "$name kv->$n $m: $(evalline "$o" "$model" "$evalids") | $(grep -c layer= "$o.log") layers," \
        "energy k/v layer0: $(grep 'layer=0 ' "$o.log" | sed 's/.*key_energy=//')"
    done
  done
}
if [ "$WHICH" = stories ] || [ "$WHICH" = all ]; then
  S="$ROOT/data/models/stories260K.bin"
  for s in $(seq 1 200); do "$DECO" generate --backend cpu --temperature 1 --top-p 1 --seed "$s" --print-ids --steps 512 2>/dev/null; done > "$OUT/stories_calib.ids"
  for s in $(seq 100001 100100); do "$DECO" generate --backend cpu --temperature 1 --top-p 1 --seed "$s" --print-ids --steps 512 2>/dev/null; done > "$OUT/stories_eval.ids"
  run_set stories260K "$S" "$OUT/stories_calib.ids" "$OUT/stories_eval.ids" 2 1
fi
if [ "$WHICH" = smollm2 ] || [ "$WHICH" = all ]; then
  Q="$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf"
  L=/usr/share/common-licenses
  "$DECO" tokenize --model "$Q" --file "$L/GPL-3" > "$OUT/smollm2_calib.ids"
  "$DECO" tokenize --model "$Q" --file "$L/Apache-2.0" > "$OUT/smollm2_eval.ids"
  sha256sum "$L/GPL-3" "$L/Apache-2.0" "$Q"
  run_set smollm2 "$Q" "$OUT/smollm2_calib.ids" "$OUT/smollm2_eval.ids" 1
fi
