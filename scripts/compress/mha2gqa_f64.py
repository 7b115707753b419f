#!/usr/bin/env python3
"""scripts/compress/mha2gqa_f64.py — KV-head compression (issue 16) computed
independently of deco, in float64 with numpy, on the same data, to measure
how close deco's `deco compress --method svd` comes to the method itself.

Written from the method's statement (docs/DESIGN.md, include/deco/compress.h),
not from deco's code: a float64 forward (scripts/gguf/reference.py's Llama
for GGUF files, the same class fed from a llama2.c checkpoint otherwise)
collects the post-RoPE keys and the values of the calibration ids (their
lines back to back, the first --calib-tokens, in chunks of 512 from an empty
cache, as deco does), the Grams come from numpy, the eigenvectors from
numpy.linalg.eigh (normalised: largest component real and positive), and the
fold is done in float64. Then, over the evaluation ids (each line cut into
windows of at most --window ids, each from an empty cache, every id but a
window's first scored), the float64 forward scores three models against the
original: this float64 fold, deco's output file (its f32 weights widened),
and the original itself; it prints ppl, KL(original || model) and top-1
agreement for each, and the largest difference between the two folds'
W_Q, W_K, W_V, W_O relative to each tensor's largest entry.

Usage (the .venv-gguf environment: numpy and the gguf package):
  .venv-gguf/bin/python scripts/compress/mha2gqa_f64.py MODEL --kv-heads N \\
      --calib-ids CALIB.ids --calib-tokens 8192 --eval-ids EVAL.ids --deco DECO_OUT [--window 512]
"""
import argparse
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gguf"))
import reference  # noqa: E402


class Llama2c(reference.Llama):
    """reference.Llama's forward over a llama2.c checkpoint (legacy v0 header,
    f32 weights, RoPE base 10000, interleaved pairs, eps 1e-5)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        dim, hidden, L, H, KH, vocab, seq_len = struct.unpack("<7i", data[:28])
        shared = vocab > 0
        vocab = abs(vocab)
        hd = dim // H
        a = np.frombuffer(data, dtype="<f4", offset=28).astype(np.float64)
        o = 0

        def take(*shape):
            nonlocal o
            n = int(np.prod(shape))
            t = a[o:o + n].reshape(shape)
            o += n
            return t

        w = {}
        w["token_embd.weight"] = take(vocab, dim)
        rms_att = take(L, dim)
        wq, wk, wv = take(L, H * hd, dim), take(L, KH * hd, dim), take(L, KH * hd, dim)
        wo = take(L, dim, H * hd)
        rms_ffn = take(L, dim)
        w1, w2, w3 = take(L, hidden, dim), take(L, dim, hidden), take(L, hidden, dim)
        w["output_norm.weight"] = take(dim)
        o += seq_len * hd  # the legacy RoPE tables
        if not shared:
            w["output.weight"] = take(vocab, dim)
        for l in range(L):
            p = "blk.%d." % l
            w[p + "attn_norm.weight"], w[p + "ffn_norm.weight"] = rms_att[l], rms_ffn[l]
            w[p + "attn_q.weight"], w[p + "attn_k.weight"], w[p + "attn_v.weight"] = wq[l], wk[l], wv[l]
            w[p + "attn_output.weight"] = wo[l]
            w[p + "ffn_gate.weight"], w[p + "ffn_down.weight"], w[p + "ffn_up.weight"] = w1[l], w2[l], w3[l]
        self.dim, self.n_layers, self.n_heads, self.n_kv_heads, self.head_dim = dim, L, H, KH, hd
        self.theta, self.eps, self.rope, self.w = 10000.0, 1e-5, "interleaved", w
        self.vocab = vocab
        self.out = w.get("output.weight", w["token_embd.weight"])


def load(path):
    with open(path, "rb") as f:
        magic = f.read(4)
    return reference.Llama(path) if magic == b"GGUF" else Llama2c(path)


def read_lines(path):
    with open(path) as f:
        return [[int(t) for t in line.split()] for line in f if line.strip()]


def top_eig_real(C, d):
    lam, U = np.linalg.eigh(C)
    U = U[:, ::-1][:, :d]
    for c in range(d):
        m = int(np.argmax(np.abs(U[:, c])))
        if U[m, c] < 0:
            U[:, c] = -U[:, c]
    return U, lam[::-1][:d].sum()


def top_eig_complex(Hm):
    lam, U = np.linalg.eigh(Hm)
    u = U[:, -1]
    m = int(np.argmax(np.abs(u)))
    return u * (np.conj(u[m]) / abs(u[m])), lam[-1]


def fold_svd(model, n_kv, calib, chunk):
    H, KH, d = model.n_heads, model.n_kv_heads, model.head_dim
    g, half = KH // n_kv, d // 2
    gd = g * d
    Cv = np.zeros((model.n_layers, n_kv, gd, gd))
    Ck = np.zeros((model.n_layers, n_kv, half, g, g), dtype=np.complex128)
    for s in range(0, len(calib), chunk):
        cache = model.new_cache()
        model.forward(calib[s:s + chunk], cache, all_logits=False)
        for l in range(model.n_layers):
            K, V = cache["k"][l], cache["v"][l]  # [T][KH][d], K after RoPE
            kc = K[..., 0::2] + 1j * K[..., 1::2]  # interleaved pairs: [T][KH][half]
            for G in range(n_kv):
                Vg = V[:, G * g:(G + 1) * g, :].reshape(len(V), gd)
                Cv[l, G] += Vg.T @ Vg
                kg = kc[:, G * g:(G + 1) * g, :]  # [T][g][half]
                Ck[l, G] += np.einsum("tbf,tcf->fbc", kg, np.conj(kg))
    w = dict(model.w)
    energy = []
    for l in range(model.n_layers):
        p = "blk.%d." % l
        Wq, Wk, Wv, Wo = (w[p + n].copy() for n in ("attn_q.weight", "attn_k.weight", "attn_v.weight",
                                                    "attn_output.weight"))
        nWk, nWv = np.zeros((n_kv * d, model.dim)), np.zeros((n_kv * d, model.dim))
        # energy kept: kept eigenvalues over traces, summed over groups (and frequencies)
        kn = kd = vn = vd = 0.0
        for G in range(n_kv):
            Psi, e = top_eig_real(Cv[l, G], d)
            vn += e
            vd += np.trace(Cv[l, G])
            nWv[G * d:(G + 1) * d] = Psi.T @ Wv[G * gd:(G + 1) * gd]
            heads = [j for j in range(H) if (j * KH // H) // g == G]
            for j in heads:
                b = (j * KH // H) % g
                Wo[:, j * d:(j + 1) * d] = Wo[:, j * d:(j + 1) * d] @ Psi[b * d:(b + 1) * d]
            for f in range(half):
                u, lam = top_eig_complex(Ck[l, G, f])
                kn += lam
                kd += np.trace(Ck[l, G, f]).real
                # rows (2f, 2f+1) of each head as the complex row r0 + i r1
                kr = Wk[G * gd:(G + 1) * gd].reshape(g, d, model.dim)
                z = np.einsum("b,bx->x", np.conj(u), kr[:, 2 * f] + 1j * kr[:, 2 * f + 1])
                nWk[G * d + 2 * f], nWk[G * d + 2 * f + 1] = z.real, z.imag
                for j in heads:
                    b = (j * KH // H) % g
                    q = (Wq[j * d + 2 * f] + 1j * Wq[j * d + 2 * f + 1]) * np.conj(u[b])
                    Wq[j * d + 2 * f], Wq[j * d + 2 * f + 1] = q.real, q.imag
        energy.append((kn / kd, vn / vd))
        w[p + "attn_q.weight"], w[p + "attn_k.weight"], w[p + "attn_v.weight"] = Wq, nWk, nWv
        w[p + "attn_output.weight"] = Wo
    return w, energy


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--kv-heads", type=int, required=True)
    ap.add_argument("--calib-ids", required=True)
    ap.add_argument("--calib-tokens", type=int, default=8192)
    ap.add_argument("--eval-ids", required=True)
    ap.add_argument("--deco", required=True, help="deco compress --method svd's output for the same data")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--no-eval", action="store_true", help="compare the folds only")
    a = ap.parse_args()
    t0 = time.time()
    model = load(a.model)
    calib = [t for line in read_lines(a.calib_ids) for t in line][:a.calib_tokens]
    orig_w = model.w
    folded, energy = fold_svd(model, a.kv_heads, calib, 512)
    t1 = time.time()
    deco = load(a.deco)
    for name in ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight"):
        err = max(np.abs(folded["blk.%d.%s" % (l, name)] - deco.w["blk.%d.%s" % (l, name)]).max() /
                  np.abs(folded["blk.%d.%s" % (l, name)]).max() for l in range(model.n_layers))
        print("fold %s: max |f64 - deco| / max |f64| over layers = %.3g" % (name, err))
    for l, (ek, ev) in enumerate(energy):
        print("f64 energy kept, layer %d: key %.6f value %.6f" % (l, ek, ev))
    if a.no_eval:
        return 0
    evals = read_lines(a.eval_ids)
    KH = model.n_kv_heads
    stats = {k: [0.0, 0.0, 0, 0] for k in ("original", "f64-svd", "deco-svd")}
    for seq in evals:
        for s in range(0, len(seq) - 1, a.window - 1):
            win = seq[s:s + a.window]
            if len(win) < 2:
                continue
            tgt = np.asarray(win[1:])
            rows = {}
            for key, w, kh in (("original", orig_w, KH), ("f64-svd", folded, a.kv_heads),
                               ("deco-svd", deco.w, a.kv_heads)):
                model.w, model.n_kv_heads = w, kh
                model.out = w.get("output.weight", w["token_embd.weight"])
                rows[key] = log_softmax(model.forward(win, model.new_cache())[:-1])
            ref = rows["original"]
            pr = np.exp(ref)
            for key, lp in rows.items():
                st = stats[key]
                st[0] += -lp[np.arange(len(tgt)), tgt].sum()
                st[1] += (pr * (ref - lp)).sum()
                st[2] += int((lp.argmax(axis=1) == ref.argmax(axis=1)).sum())
                st[3] += len(tgt)
    for key, (nll, kl, agree, n) in stats.items():
        print("%s: tokens=%d ppl=%.4f kl=%.6f top1=%.4f" % (key, n, np.exp(nll / n), kl / n, agree / n))
    print("time: fold %.1fs, total %.1fs" % (t1 - t0, time.time() - t0))


if __name__ == "__main__":
    sys.exit(main())
