#!/usr/bin/env python3
"""scripts/gguf/make_mini.py — writes a small real-weight Llama GGUF from
SmolLM2-135M-Instruct.Q4_1.gguf, for GPU test hosts the 98 MB file is too
big to carry to: its first N layers (default 3; tensors blk.0..N-1 copied
byte for byte, Q4_1 matrices and F32 norms), token_embd requantised from
Q8_0 to Q4_0 by the gguf package (dequantise, then gguf.quants.quantize),
output_norm as it is, and every metadata entry kept but llama.block_count
(N). The result must stay within --max-mib (24): with the
vocabulary of 49152 the Q4_0 embedding alone is 15.2 MiB, the tokenizer
metadata 1.7 MiB and each layer 2.1 MiB, so 3 layers give 23.2 MiB and 4
layers 25.3 MiB, over the limit; the script refuses a result that does not
fit. The CPU's logits on it are the GPU tests' reference.

Usage (environment of requirements.txt):
  .venv-gguf/bin/python scripts/gguf/make_mini.py [--layers N] [--max-mib M] [IN.gguf [OUT.gguf]]
Defaults: models-cache/SmolLM2-135M-Instruct.Q4_1.gguf ->
models-cache/SmolLM2-135M-mini.gguf. Prints the size and sha256.
"""
import argparse
import os
import sys
import time

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT

import ggufutil


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", nargs="?", default=ggufutil.SMOLLM2)
    ap.add_argument("dst", nargs="?", default=os.path.join(ggufutil.MODELS_DIR, "SmolLM2-135M-mini.gguf"))
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--max-mib", type=float, default=24.0)
    a = ap.parse_args()
    t0 = time.time()
    r = gguf.GGUFReader(a.src)
    meta = ggufutil.metadata(r)
    n_layers = int(meta["llama.block_count"])
    if not 1 <= a.layers <= n_layers:
        raise SystemExit("make_mini: --layers %d is outside 1..%d" % (a.layers, n_layers))
    w = gguf.GGUFWriter(a.dst + ".part", meta["general.architecture"])
    if r.alignment != gguf.GGUF_DEFAULT_ALIGNMENT:
        w.add_custom_alignment(r.alignment)
    ggufutil.copy_metadata(r, w, overrides={"llama.block_count": (a.layers, gguf.GGUFValueType.UINT32)})
    for t in r.tensors:
        if t.name.startswith("blk."):
            if int(t.name.split(".")[1]) >= a.layers:
                continue
        if t.name == "token_embd.weight":
            q = gguf.quants.quantize(ggufutil.dequantize(t), QT.Q4_0)
            w.add_tensor(t.name, q, raw_shape=q.shape, raw_dtype=QT.Q4_0)
        else:
            data = np.array(t.data)
            if t.tensor_type in (QT.F32, QT.F16):
                w.add_tensor(t.name, data)
            else:
                w.add_tensor(t.name, data, raw_shape=data.shape, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    size = os.path.getsize(a.dst + ".part")
    if size > a.max_mib * (1 << 20):
        os.remove(a.dst + ".part")
        raise SystemExit("make_mini: %d layers give %d bytes (%.2f MiB), over --max-mib %g"
                         % (a.layers, size, size / (1 << 20), a.max_mib))
    os.replace(a.dst + ".part", a.dst)
    print("make_mini: %s: %d layers, %d bytes (%.2f MiB), sha256 %s (%.1fs)"
          % (a.dst, a.layers, size, size / (1 << 20), ggufutil.sha256_file(a.dst), time.time() - t0))


if __name__ == "__main__":
    main()
