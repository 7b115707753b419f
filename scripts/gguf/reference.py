#!/usr/bin/env python3
"""scripts/gguf/reference.py — an independent float64 forward of a Llama GGUF
file, the test oracle for deco's forward on GGUF weights (issue 13). Written
here from the Llama architecture (RMSNorm, RoPE, grouped-query causal
attention, SwiGLU), not from deco's code: numpy in float64 throughout, every
weight dequantised by the gguf package (gguf.quants.dequantize) and widened
to float64.

It runs teacher-forced over an id sequence (no BOS added: position p reads
ids[0..p]) and writes the top-16 ids and logits of every position as a .topk
fixture (format: scripts/gguf/ggufutil.py). The sequence comes from a file
(--ids) or from the model's own greedy continuation of one start id
(--greedy ID --length N, ties to the lower id), which is written out with
--write-ids. Optional: --rows FILE.npy keeps the whole float64 logit rows
(for scripts/gguf/compare.py); --rope half rotates half-split pairs instead
of GGUF's interleaved ones (gguf.h explains which is right; the option
exists to show that the other one disagrees with llama.cpp).

Usage (environment of requirements.txt):
  .venv-gguf/bin/python scripts/gguf/reference.py MODEL.gguf --greedy 1 --length 64 \\
      --write-ids seq.ids --out seq.topk
  .venv-gguf/bin/python scripts/gguf/reference.py MODEL.gguf --ids seq.ids --out seq.topk
scripts/gguf/make_reference_fixtures.sh runs it for the committed fixtures.
"""
import argparse
import sys
import time

import numpy as np

import gguf

import ggufutil


class Llama:
    def __init__(self, path, rope="interleaved"):
        r = gguf.GGUFReader(path)
        m = ggufutil.metadata(r)
        if m.get("general.architecture") != "llama":
            raise SystemExit("%s: architecture %r, not llama" % (path, m.get("general.architecture")))
        self.dim = int(m["llama.embedding_length"])
        self.n_layers = int(m["llama.block_count"])
        self.n_heads = int(m["llama.attention.head_count"])
        self.n_kv_heads = int(m.get("llama.attention.head_count_kv", self.n_heads))
        self.head_dim = self.dim // self.n_heads
        self.theta = float(m.get("llama.rope.freq_base", 10000.0))
        self.eps = float(m["llama.attention.layer_norm_rms_epsilon"])
        if int(m.get("llama.rope.dimension_count", self.head_dim)) != self.head_dim:
            raise SystemExit("%s: partial rotary embeddings are not handled here" % path)
        self.rope = rope
        self.w = {t.name: ggufutil.dequantize(t).astype(np.float64) for t in r.tensors}
        self.vocab = self.w["token_embd.weight"].shape[0]
        self.out = self.w.get("output.weight", self.w["token_embd.weight"])

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rotate(self, x, pos):
        """x [T][heads][head_dim]; pair j has frequency theta^(-2j/head_dim)."""
        half = self.head_dim // 2
        freq = self.theta ** (-2.0 * np.arange(half) / self.head_dim)
        ang = np.asarray(pos, dtype=np.float64)[:, None] * freq[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        if self.rope == "interleaved":
            a, b = x[..., 0::2], x[..., 1::2]
        else:
            a, b = x[..., :half], x[..., half:]
        ra, rb = a * c - b * s, a * s + b * c
        y = np.empty_like(x)
        if self.rope == "interleaved":
            y[..., 0::2], y[..., 1::2] = ra, rb
        else:
            y[..., :half], y[..., half:] = ra, rb
        return y

    def forward(self, ids, cache, all_logits=True):
        """Runs ids at positions len(cache)..; cache: per layer lists of K, V
        ([T][kv_heads][head_dim]). Returns logits [n][vocab] (or the last row)."""
        T0 = cache["len"]
        n = len(ids)
        pos = np.arange(T0, T0 + n)
        H, KH, hd = self.n_heads, self.n_kv_heads, self.head_dim
        group = H // KH
        x = self.w["token_embd.weight"][np.asarray(ids)]
        for l in range(self.n_layers):
            p = "blk.%d." % l
            h = self.rmsnorm(x, self.w[p + "attn_norm.weight"])
            q = (h @ self.w[p + "attn_q.weight"].T).reshape(n, H, hd)
            k = (h @ self.w[p + "attn_k.weight"].T).reshape(n, KH, hd)
            v = (h @ self.w[p + "attn_v.weight"].T).reshape(n, KH, hd)
            q, k = self.rotate(q, pos), self.rotate(k, pos)
            K = np.concatenate([cache["k"][l], k]) if T0 else k
            V = np.concatenate([cache["v"][l], v]) if T0 else v
            cache["k"][l], cache["v"][l] = K, V
            att = np.empty((n, H, hd))
            causal = pos[:, None] >= np.arange(T0 + n)[None, :]  # [n][T0+n]
            for head in range(H):
                kh = head // group
                s = (q[:, head, :] @ K[:, kh, :].T) / np.sqrt(hd)
                s = np.where(causal, s, -np.inf)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                att[:, head, :] = s @ V[:, kh, :]
            x = x + att.reshape(n, H * hd) @ self.w[p + "attn_output.weight"].T
            h = self.rmsnorm(x, self.w[p + "ffn_norm.weight"])
            g = h @ self.w[p + "ffn_gate.weight"].T
            u = h @ self.w[p + "ffn_up.weight"].T
            x = x + (g / (1.0 + np.exp(-g)) * u) @ self.w[p + "ffn_down.weight"].T
        cache["len"] = T0 + n
        x = self.rmsnorm(x if all_logits else x[-1:], self.w["output_norm.weight"])
        return x @ self.out.T

    def new_cache(self):
        return {"len": 0, "k": [None] * self.n_layers, "v": [None] * self.n_layers}

    def greedy(self, start, length):
        ids = [start]
        cache = self.new_cache()
        logits = self.forward(ids, cache, all_logits=False)
        while len(ids) < length:
            ids.append(int(np.argmax(logits[-1])))  # first maximum: the lower id
            logits = self.forward(ids[-1:], cache, all_logits=False)
        return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--ids", help="file of comma-separated ids to teacher-force")
    src.add_argument("--greedy", type=int, metavar="ID", help="start id of a greedy continuation")
    ap.add_argument("--length", type=int, default=64, help="ids of the greedy sequence (with the start)")
    ap.add_argument("--write-ids", help="write the sequence here")
    ap.add_argument("--out", help=".topk fixture to write")
    ap.add_argument("--rows", help=".npy file for the whole float64 logit rows")
    ap.add_argument("--rope", choices=("interleaved", "half"), default="interleaved")
    ap.add_argument("--k", type=int, default=16)
    a = ap.parse_args()

    t0 = time.time()
    model = Llama(a.model, a.rope)
    t1 = time.time()
    ids = ggufutil.read_ids(a.ids) if a.ids else model.greedy(a.greedy, a.length)
    t2 = time.time()
    logits = model.forward(ids, model.new_cache())
    t3 = time.time()
    if a.write_ids:
        ggufutil.write_ids(a.write_ids, ids)
    if a.out:
        ggufutil.write_topk(a.out, ids, logits, ggufutil.sha256_file(a.model), a.k)
    if a.rows:
        np.save(a.rows, logits)
    top2 = np.sort(logits, axis=1)[:, -2:]
    print("reference: %s, %d ids, rope %s: load %.1fs, greedy %.1fs, forward %.1fs; argmax of the last "
          "position %d, smallest top-2 gap %.3g" % (a.model, len(ids), a.rope, t1 - t0, t2 - t1, t3 - t2,
                                                   int(np.argmax(logits[-1])), float((top2[:, 1] - top2[:, 0]).min())))


if __name__ == "__main__":
    sys.exit(main())
