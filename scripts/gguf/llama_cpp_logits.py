#!/usr/bin/env python3
"""scripts/gguf/llama_cpp_logits.py — llama.cpp's logits for an id sequence,
the second oracle of issue 13. Loads the libllama.so that
scripts/gguf/build_llama_cpp.sh built (default .llama-cpp/build/bin) through
llama-cpp-python's own low-level ctypes bindings (unpacked beside it, in
.llama-cpp/src/llama_cpp), decodes the ids in one batch at positions 0..T-1
(no BOS added, teacher forcing) with the K/V cache in F32 and flash
attention off, so on an all-F32 GGUF nothing is rounded below fp32, and
saves every position's whole logit row (float32) as a .npy file; --topk
also writes a .topk fixture (format: scripts/gguf/ggufutil.py).

Usage (environment of requirements.txt):
  .venv-gguf/bin/python scripts/gguf/llama_cpp_logits.py MODEL.gguf --ids seq.ids --rows out.npy
Then scripts/gguf/compare.py compares the rows with the float64 reference.
"""
import argparse
import ctypes
import importlib
import os
import sys
import time
import types

import numpy as np

import ggufutil

GGML_TYPE_F32 = 0
LLAMA_FLASH_ATTN_TYPE_DISABLED = 0


def bindings(root):
    """llama_cpp.llama_cpp without the package's __init__ (which imports the
    high-level API and its dependencies)."""
    pkg = types.ModuleType("llama_cpp")
    pkg.__path__ = [os.path.join(root, "src", "llama_cpp")]
    sys.modules["llama_cpp"] = pkg
    os.environ["LLAMA_CPP_LIB_PATH"] = os.path.join(root, "build", "bin")
    return importlib.import_module("llama_cpp.llama_cpp")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--ids", required=True)
    ap.add_argument("--rows", required=True, help=".npy file for the [T][vocab] float32 logits")
    ap.add_argument("--topk", help="also write a .topk fixture")
    ap.add_argument("--llama-cpp", default=os.path.join(ggufutil.ROOT, ".llama-cpp"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()

    ll = bindings(a.llama_cpp)
    ids = ggufutil.read_ids(a.ids)
    n = len(ids)
    t0 = time.time()
    ll.llama_backend_init()
    mp = ll.llama_model_default_params()
    model = ll.llama_model_load_from_file(os.path.abspath(a.model).encode(), mp)
    if not model:
        raise SystemExit("llama.cpp could not load %s" % a.model)
    cp = ll.llama_context_default_params()
    cp.n_ctx = max(n, 16)
    cp.n_batch = n
    cp.n_ubatch = n
    cp.n_seq_max = 1
    cp.n_threads = a.threads
    cp.n_threads_batch = a.threads
    cp.type_k = GGML_TYPE_F32
    cp.type_v = GGML_TYPE_F32
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = ll.llama_init_from_model(model, cp)
    if not ctx:
        raise SystemExit("llama.cpp could not create a context")
    vocab = ll.llama_vocab_n_tokens(ll.llama_model_get_vocab(model))
    batch = ll.llama_batch_init(n, 0, 1)
    for i, t in enumerate(ids):
        batch.token[i] = t
        batch.pos[i] = i
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = 1
    batch.n_tokens = n
    t1 = time.time()
    rc = ll.llama_decode(ctx, batch)
    if rc != 0:
        raise SystemExit("llama_decode returned %d" % rc)
    rows = np.empty((n, vocab), dtype=np.float32)
    for i in range(n):
        p = ll.llama_get_logits_ith(ctx, i)
        rows[i] = np.ctypeslib.as_array(ctypes.cast(p, ctypes.POINTER(ctypes.c_float)), shape=(vocab,))
    t2 = time.time()
    np.save(a.rows, rows)
    if a.topk:
        ggufutil.write_topk(a.topk, ids, rows.astype(np.float64), ggufutil.sha256_file(a.model))
    ll.llama_batch_free(batch)
    ll.llama_free(ctx)
    ll.llama_model_free(model)
    print("llama.cpp: %s, %d ids: load %.1fs, decode %.1fs" % (a.model, n, t1 - t0, t2 - t1))


if __name__ == "__main__":
    main()
