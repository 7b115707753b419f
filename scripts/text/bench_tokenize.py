#!/usr/bin/env python3
"""scripts/text/bench_tokenize.py — encoding speed, deco beside llama.cpp, on
the same 1 MiB of English text in the same process: llama.cpp's
llama_tokenize (libllama.so of scripts/gguf/build_llama_cpp.sh, through
llama-cpp-python's ctypes bindings) and deco's deco_tokenizer_tokenize
(libdeco.so of a build folder, through ctypes), both add_special and
parse_special off, both given the bytes and a big enough id buffer; the
median of 9 timed calls after one warm-up, MB/s = 2^20 bytes / seconds.
Checks first that both give the same ids.

The text: the Markdown files of the llama-cpp-python 0.3.36 source package
(.llama-cpp/src, its docs and llama.cpp's), sorted by path and
concatenated, cut to 1 MiB at a character boundary: English prose with
code, reproducible from the pinned package.

Usage: .venv-gguf/bin/python scripts/text/bench_tokenize.py BUILD_DIR [VOCAB.gguf]
  (VOCAB default: models-cache/SmolLM2-135M-Instruct.Q4_1.gguf)
"""
import ctypes
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lltok  # noqa: E402

MIB = 1 << 20


def english_text():
    root = os.path.join(lltok.LLAMA_CPP, "src")
    paths = []
    for d, _, files in os.walk(root):
        paths += [os.path.join(d, f) for f in files if f.endswith(".md")]
    data = b"".join(open(p, "rb").read() for p in sorted(paths))
    if len(data) < MIB:
        raise SystemExit("only %d bytes of Markdown under %s" % (len(data), root))
    cut = MIB
    while data[cut] & 0xC0 == 0x80:
        cut -= 1
    return data[:cut]


def timed(fn, reps=9):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    build = sys.argv[1]
    vocab = sys.argv[2] if len(sys.argv) > 2 else lltok.ggufutil.SMOLLM2
    text = english_text()
    deco = ctypes.CDLL(os.path.join(build, "lib", "libdeco.so"))
    deco.deco_tokenizer_load_gguf.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    deco.deco_tokenizer_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                             ctypes.POINTER(ctypes.c_int32), ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    deco.deco_last_error.restype = ctypes.c_char_p
    tok = ctypes.c_void_p()
    if deco.deco_tokenizer_load_gguf(vocab.encode(), ctypes.byref(tok)) != 0:
        raise SystemExit(deco.deco_last_error(None).decode())
    cap = 3 * len(text) + 8
    out = (ctypes.c_int32 * cap)()
    n = ctypes.c_int()

    def run_deco():
        if deco.deco_tokenizer_tokenize(tok, text, len(text), 0, out, cap, ctypes.byref(n)) != 0:
            raise SystemExit(deco.deco_last_error(None).decode())

    v = lltok.Vocab(vocab)
    lout = (v.lib.llama_token * cap)()
    nl = [0]

    def run_llama():
        nl[0] = v.lib.llama_tokenize(v.vocab, text, len(text), lout, cap, False, False)

    run_deco()
    run_llama()
    same = n.value == nl[0] and list(out[:n.value]) == list(lout[:nl[0]])
    td, tl = timed(run_deco), timed(run_llama)
    print("text: %d bytes of Markdown (English), vocab %s" % (len(text), os.path.basename(vocab)))
    print("ids: deco %d, llama.cpp %d, identical: %s" % (n.value, nl[0], same))
    print("deco      %.3f s  %.2f MB/s" % (td, len(text) / MIB / td))
    print("llama.cpp %.3f s  %.2f MB/s" % (tl, len(text) / MIB / tl))
    print("machine: %s, %s, %d cores" % (platform.machine(), platform.processor() or platform.platform(),
                                        os.cpu_count()))
    if not same:
        raise SystemExit("the ids differ")


if __name__ == "__main__":
    main()
