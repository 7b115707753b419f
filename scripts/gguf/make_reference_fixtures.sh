#!/usr/bin/env bash
# scripts/gguf/make_reference_fixtures.sh — writes the float64 reference's
# fixtures of data/fixtures/gguf/ (scripts/gguf/reference.py; format in
# scripts/gguf/ggufutil.py):
#   smollm2_{once,the,def}.ids    three id sequences: SmolLM2-135M's own
#       greedy continuation (float64, ties to the lower id, no BOS) of the
#       start tokens "Once" (6403, 64 ids), "The" (504, 48 ids) and "def"
#       (1604, 32 ids). Real tokenisation comes with issue 14.
#   smollm2_{once,the,def}.topk      top-16 logits of SmolLM2 teacher-forced
#       on each sequence
#   smollm2mini_{once,the,def}.topk  the same on the mini model
#       (scripts/gguf/make_mini.py)
#   tiny_{f32,f16,bf16,q8_0,q4_0,q4_1,v2}.ids/.topk  each tiny fixture's
#       greedy continuation of id 5, 16 ids, and its top-16 logits
# Needs models-cache/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/install-deps.sh
# --models) and models-cache/SmolLM2-135M-mini.gguf (make_mini.py), and the
# environment of requirements.txt in .venv-gguf (or $PYTHON). Takes about a
# minute on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py=${PYTHON:-$root/.venv-gguf/bin/python}
models=${DECO_MODELS_DIR:-$root/models-cache}
out=$root/data/fixtures/gguf
ref="$py $root/scripts/gguf/reference.py"
full=$models/SmolLM2-135M-Instruct.Q4_1.gguf
mini=$models/SmolLM2-135M-mini.gguf
for spec in once:6403:64 the:504:48 def:1604:32; do
  IFS=: read -r name start len <<<"$spec"
  $ref "$full" --greedy "$start" --length "$len" --write-ids "$out/smollm2_$name.ids" --out "$out/smollm2_$name.topk"
  $ref "$mini" --ids "$out/smollm2_$name.ids" --out "$out/smollm2mini_$name.topk"
done
for t in f32 f16 bf16 q8_0 q4_0 q4_1 v2; do
  $ref "$out/tiny_$t.gguf" --greedy 5 --length 16 --write-ids "$out/tiny_$t.ids" --out "$out/tiny_$t.topk"
done
