#!/usr/bin/env python3
"""scripts/gguf/make_f32.py — writes an all-F32 copy of a GGUF file: every
tensor dequantised by the gguf package (gguf.quants.dequantize) and stored
as F32, the metadata copied byte for byte but general.file_type (0, all
F32). For SmolLM2-135M that is about 540 MB: never committed. llama.cpp runs
on it as an oracle for the float64 reference (scripts/gguf/reference.py),
since on an F32 file it does not round activations to 8 bits the way its
Q4_1 kernels do.

Usage (environment of requirements.txt):
  .venv-gguf/bin/python scripts/gguf/make_f32.py [IN.gguf [OUT.gguf]]
Defaults: models-cache/SmolLM2-135M-Instruct.Q4_1.gguf ->
models-cache/SmolLM2-135M-Instruct.F32.gguf. Prints the size and sha256.
"""
import os
import sys
import time

import numpy as np

import gguf

import ggufutil


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else ggufutil.SMOLLM2
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ggufutil.MODELS_DIR, "SmolLM2-135M-Instruct.F32.gguf")
    t0 = time.time()
    r = gguf.GGUFReader(src)
    arch = ggufutil.metadata(r)["general.architecture"]
    w = gguf.GGUFWriter(dst + ".part", arch)
    if r.alignment != gguf.GGUF_DEFAULT_ALIGNMENT:
        w.add_custom_alignment(r.alignment)
    ggufutil.copy_metadata(r, w, overrides={"general.file_type": (0, gguf.GGUFValueType.UINT32)})
    for t in r.tensors:
        w.add_tensor(t.name, ggufutil.dequantize(t).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(dst + ".part", dst)
    print("make_f32: %s: %d bytes, sha256 %s (%.1fs)" % (dst, os.path.getsize(dst), ggufutil.sha256_file(dst),
                                                       time.time() - t0))


if __name__ == "__main__":
    main()
