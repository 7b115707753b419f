"""scripts/text/lltok.py — llama.cpp's tokenizer as an oracle (not run by
itself): libllama.so built by scripts/gguf/build_llama_cpp.sh, loaded through
llama-cpp-python's own ctypes bindings (scripts/gguf/llama_cpp_logits.py),
with vocab_only models."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "gguf"))
import ggufutil  # noqa: E402
from llama_cpp_logits import bindings  # noqa: E402

ROOT = ggufutil.ROOT
LLAMA_CPP = os.environ.get("DECO_LLAMA_CPP", os.path.join(ROOT, ".llama-cpp"))
VOCAB_DIR = os.path.join(LLAMA_CPP, "src", "vendor", "llama.cpp", "models")

_ll = None


def ll():
    global _ll
    if _ll is None:
        _ll = bindings(LLAMA_CPP)
        _ll.llama_backend_init()
    return _ll


class Vocab:
    def __init__(self, path):
        lib = ll()
        mp = lib.llama_model_default_params()
        mp.vocab_only = True
        self.model = lib.llama_model_load_from_file(os.path.abspath(path).encode(), mp)
        if not self.model:
            raise SystemExit("llama.cpp could not load %s" % path)
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.lib = lib

    def tokenize(self, data, add_special, parse_special):
        n = 3 * len(data) + 16
        arr = (self.lib.llama_token * n)()
        k = self.lib.llama_tokenize(self.vocab, data, len(data), arr, n, add_special, parse_special)
        if k < 0:
            raise RuntimeError("llama_tokenize: %d" % k)
        return list(arr[:k])

    def n_tokens(self):
        return self.lib.llama_vocab_n_tokens(self.vocab)
