#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: tiny valid inputs, made here
(no real model). Usage: make_corpus.py OUT_DIR -> OUT_DIR/fuzz_checkpoint/,
OUT_DIR/fuzz_tokenizer/, OUT_DIR/fuzz_recycle_state/, OUT_DIR/fuzz_template/,
OUT_DIR/fuzz_cli/, OUT_DIR/fuzz_gguf/, OUT_DIR/fuzz_ngram/, OUT_DIR/fuzz_bpe/."""
import os
import struct
import sys


def checkpoint(dim, hidden, layers, heads, kv_heads, vocab, seq_len, seed):
    """A llama2.c checkpoint (negative vocab = separate classifier) whose
    weights are small deterministic values."""
    hd = dim // heads
    v = abs(vocab)
    counts = [v * dim, layers * dim, layers * dim * heads * hd, layers * dim * kv_heads * hd,
              layers * dim * kv_heads * hd, layers * heads * hd * dim, layers * dim,
              layers * dim * hidden, layers * hidden * dim, layers * dim * hidden, dim,
              seq_len * hd // 2, seq_len * hd // 2, v * dim if vocab < 0 else 0]
    n = sum(counts)
    values = [((i * 2654435761 + seed) % 2001 - 1000) / 1000.0 for i in range(n)]
    return struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab, seq_len) + struct.pack("<%df" % n, *values)


def tokenizer(extra, text):
    """A fuzz_tokenizer input: vocab prefix, text, then a tokenizer.bin with
    the 259 standard pieces and the extra (score, bytes) pieces."""
    pieces = [(0.0, b"<unk>"), (0.0, b"\n<s>\n"), (0.0, b"\n</s>\n")]
    pieces += [(0.0, b"<0x%02X>" % b) for b in range(256)]
    pieces += extra
    max_len = max(len(p) for _, p in pieces)
    body = struct.pack("<i", max_len)
    for score, p in pieces:
        body += struct.pack("<fi", score, len(p)) + p
    head = struct.pack("<HB", len(pieces) - 259, len(text)) + text
    return head + body


def tokenizer_file(n_extra):
    """A whole tokenizer.bin: the 259 standard pieces and n_extra two-letter
    pieces scored by index (vocab 259 + n_extra)."""
    pieces = [(0.0, b"<unk>"), (0.0, b"\n<s>\n"), (0.0, b"\n</s>\n")]
    pieces += [(0.0, b"<0x%02X>" % b) for b in range(256)]
    letters = b"abcdefghijklmnopqrstuvwxyz O"
    pieces += [(-float(i), bytes([letters[i % 28], letters[(i // 28) % 28]])) for i in range(n_extra)]
    body = struct.pack("<i", max(len(p) for _, p in pieces))
    for score, p in pieces:
        body += struct.pack("<fi", score, len(p)) + p
    return body


def recycle_state(vocab, k, seed):
    """A Token Recycling state file (include/deco/recycle.h): header, int32
    table of ids < vocab, FNV-1a 64 checksum."""
    ids = [(i * 2654435761 + seed) % vocab for i in range(vocab * k)]
    body = b"DECORECY" + struct.pack("<4I", 1, vocab, k, 0) + struct.pack("<%di" % len(ids), *ids)
    h = 0xcbf29ce484222325
    for b in body:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return body + struct.pack("<Q", h)


def _mix64(z):
    m = 0xFFFFFFFFFFFFFFFF
    z = (z + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def ngram_table(seqs, vocab, tokenizer_hash=0):
    """A superposed-decoding n-gram table (include/deco/superpose.h), as
    deco_ngram_builder_finish writes it: orders 2..6, contexts in canonical
    order, linear probing at most half full, FNV-1a 64 checksum."""
    seed = 0x243F6A8885A308D3
    contexts = []  # (order, ctx, [(token, count)])
    for order in range(2, 7):
        counts = {}
        for s in seqs:
            for i in range(len(s) - order + 1):
                ctx, tok = tuple(s[i:i + order - 1]), s[i + order - 1]
                counts.setdefault(ctx, {})
                counts[ctx][tok] = counts[ctx].get(tok, 0) + 1
        for ctx in sorted(counts):
            contexts.append((order, ctx, sorted(counts[ctx].items())))
    n_slots = 1
    while n_slots < 2 * len(contexts):
        n_slots *= 2
    slots = [None] * n_slots
    followers = []
    per_order = [0] * 5
    for order, ctx, fol in contexts:
        h = _mix64(seed ^ order)
        for t in ctx:
            h = _mix64(h ^ t)
        h = h or 1
        s = h & (n_slots - 1)
        while slots[s] is not None:
            s = (s + 1) & (n_slots - 1)
        slots[s] = struct.pack("<QIIII", h, len(followers), len(fol), sum(c for _, c in fol), order)
        followers += fol
        per_order[order - 2] += 1
    body = b"DECONGRM" + struct.pack("<IIIIII", 1, 96, vocab, 2, 6, n_slots)
    body += struct.pack("<QQII", seed, tokenizer_hash, len(contexts), len(followers))
    body += struct.pack("<QQ", sum(len(s) for s in seqs), 0) + struct.pack("<5I", *per_order) + struct.pack("<I", 0)
    body += b"".join(x if x is not None else b"\0" * 24 for x in slots)
    body += b"".join(struct.pack("<II", t, c) for t, c in followers)
    h = 0xcbf29ce484222325
    for b in body:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return body + struct.pack("<Q", h)


# GGUF (fuzz_gguf): ggml tensor type ids and (block elements, block bytes).
GGUF_TYPES = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q8_0": (8, 32, 34),
              "BF16": (30, 1, 2)}


def gguf_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, vtype, value):
    """One metadata entry; vtype is the GGUF value type id, value packed
    bytes (strings and arrays already encoded)."""
    return gguf_str(key) + struct.pack("<I", vtype) + value


def gguf_tensor_data(qtype, n, seed):
    """n elements of deterministic small values stored as qtype."""
    tid, blk, nbytes = GGUF_TYPES[qtype]
    vals = [((i * 2654435761 + seed) % 2001 - 1000) / 4000.0 for i in range(n)]
    if qtype == "F32":
        return struct.pack("<%df" % n, *vals)
    if qtype == "F16":
        return struct.pack("<%de" % n, *vals)
    if qtype == "BF16":
        return b"".join(struct.pack("<f", v)[2:] for v in vals)
    out = b""
    for b in range(n // 32):
        q = bytes(((i * 7 + b + seed) % 256) for i in range(32 if qtype == "Q8_0" else 16))
        d = struct.pack("<e", 0.01 + 0.001 * (b % 5))
        out += d + (struct.pack("<e", -0.05) if qtype == "Q4_1" else b"") + q
    return out


def gguf_llama(types, version=3, alignment=None, dim=32, heads=2, kv_heads=1, hidden=32, vocab=8, output=False,
               seed=0, arch="llama"):
    """A whole one-layer Llama GGUF; types maps a role (embd, q, k, v, o,
    gate, up, down, output) to a tensor type, norms are F32."""
    hd = dim // heads
    tensors = [("token_embd.weight", [dim, vocab], types.get("embd", "Q4_1")),
               ("blk.0.attn_norm.weight", [dim], "F32"),
               ("blk.0.attn_q.weight", [dim, heads * hd], types.get("q", "Q4_1")),
               ("blk.0.attn_k.weight", [dim, kv_heads * hd], types.get("k", "Q4_1")),
               ("blk.0.attn_v.weight", [dim, kv_heads * hd], types.get("v", "Q4_1")),
               ("blk.0.attn_output.weight", [heads * hd, dim], types.get("o", "Q4_1")),
               ("blk.0.ffn_norm.weight", [dim], "F32"),
               ("blk.0.ffn_gate.weight", [dim, hidden], types.get("gate", "Q4_1")),
               ("blk.0.ffn_up.weight", [dim, hidden], types.get("up", "Q4_1")),
               ("blk.0.ffn_down.weight", [hidden, dim], types.get("down", "Q4_1")),
               ("output_norm.weight", [dim], "F32")]
    if output:
        tensors.append(("output.weight", [dim, vocab], types.get("output", "Q4_1")))
    U32, F32, STR, ARR, I32, BOOL = 4, 6, 8, 9, 5, 7
    kvs = [gguf_kv("general.architecture", STR, gguf_str(arch))]
    if alignment:
        kvs.append(gguf_kv("general.alignment", U32, struct.pack("<I", alignment)))
    kvs += [gguf_kv("llama.block_count", U32, struct.pack("<I", 1)),
            gguf_kv("llama.context_length", U32, struct.pack("<I", 64)),
            gguf_kv("llama.embedding_length", U32, struct.pack("<I", dim)),
            gguf_kv("llama.feed_forward_length", U32, struct.pack("<I", hidden)),
            gguf_kv("llama.attention.head_count", U32, struct.pack("<I", heads)),
            gguf_kv("llama.attention.head_count_kv", U32, struct.pack("<I", kv_heads)),
            gguf_kv("llama.rope.freq_base", F32, struct.pack("<f", 10000.0)),
            gguf_kv("llama.attention.layer_norm_rms_epsilon", F32, struct.pack("<f", 1e-5)),
            gguf_kv("llama.rope.dimension_count", U32, struct.pack("<I", hd)),
            gguf_kv("tokenizer.ggml.tokens", ARR,
                    struct.pack("<IQ", STR, vocab) + b"".join(gguf_str("t%d" % i) for i in range(vocab))),
            gguf_kv("tokenizer.ggml.token_type", ARR, struct.pack("<IQ", I32, vocab) + struct.pack("<%di" % vocab,
                                                                                                  *([1] * vocab))),
            gguf_kv("tokenizer.ggml.add_bos_token", BOOL, b"\x01"),
            gguf_kv("tokenizer.ggml.bos_token_id", U32, struct.pack("<I", 1))]
    align = alignment or 32
    info, data = b"", b""
    for i, (name, dims, qtype) in enumerate(tensors):
        n = 1
        for d in dims:
            n *= d
        info += gguf_str(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims)
        info += struct.pack("<IQ", GGUF_TYPES[qtype][0], len(data))
        data += gguf_tensor_data(qtype, n, seed + i)
        data += b"\0" * (-len(data) % align)
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs) + info
    return head + b"\0" * (-len(head) % align) + data


def main():
    out = sys.argv[1]
    seeds = {
        "fuzz_checkpoint": {
            "shared.bin": checkpoint(8, 4, 1, 1, 1, 5, 2, 1),
            "separate.bin": checkpoint(16, 6, 2, 2, 1, -6, 3, 2),
            "gqa.bin": checkpoint(32, 3, 1, 4, 2, 3, 1, 3),
        },
        "fuzz_tokenizer": {
            "bytes_only.bin": tokenizer([], b"hi!"),
            "merges.bin": tokenizer([(-1.0, b" "), (-2.0, b"a"), (-3.0, b"b"), (-4.0, b"ab"),
                                     (-4.0, b"ba"), (-0.5, b" ab"), (-9.0, b"\xc3\xa9"),
                                     (-9.0, b"\xf0\x9f\x98\x80")],
                                    b"abab \xc3\xa9\xf0\x9f\x98\x80\x80 ba"),
            "bos_merge.bin": tokenizer([(-1.0, b" "), (2.0, b"\n<s>\n "), (-1.0, b"<0x41>")], b"A a"),
        },
        "fuzz_recycle_state": {
            "v7k3.bin": recycle_state(7, 3, 1),
            "v50k8.bin": recycle_state(50, 8, 2),
            "v3k16.bin": recycle_state(3, 16, 3),
        },
        "fuzz_template": {
            "official.txt": open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                                              "fixtures", "token_recycling_template_80.txt"), "rb").read(),
            "chain.txt": b"0\n0,0\n0,0,0\n",
            "crlf.txt": b"1\r\n0\r\n1,2\r\n0,15\r\n",
            "bad_prefix.txt": b"0\n1\n2,0\n",
        },
    }
    # fuzz_gguf: whole GGUF files, each under run.sh's -max_len of 8192.
    seeds["fuzz_gguf"] = {
        "q4_1.gguf": gguf_llama({}, seed=1),
        "q4_0_v2_align64.gguf": gguf_llama({k: "Q4_0" for k in ("embd", "q", "k", "v", "o", "gate", "up", "down")},
                                           version=2, alignment=64, seed=2),
        "mixed.gguf": gguf_llama({"embd": "Q8_0", "k": "F16", "v": "BF16", "o": "Q4_0"}, seed=3),
        "f32_output.gguf": gguf_llama({k: "F32" for k in ("embd", "q", "k", "v", "o", "gate", "up", "down",
                                                           "output")},
                                      dim=16, hidden=16, vocab=2, output=True, seed=4),
        "not_llama.gguf": gguf_llama({}, arch="qwen2", seed=5),
    }
    # fuzz_cli: byte 0 picks the option the rest is handed to (0 --model,
    # 1 --tokenizer with the built-in model, 2 --tree-template, 3
    # --recycle-state), byte 1 greedy (even) or sampled (odd).
    official = seeds["fuzz_template"]["official.txt"]
    seeds["fuzz_cli"] = {
        "model.bin": b"\x00\x00" + checkpoint(8, 4, 1, 1, 1, 16, 8, 4),
        "model_sampled.bin": b"\x00\x01" + checkpoint(16, 6, 1, 2, 1, -20, 8, 5),
        "tokenizer512.bin": b"\x01\x00" + tokenizer_file(512 - 259),
        "template.txt": b"\x02\x00" + official,
        "template_sampled.txt": b"\x02\x01" + b"0\n1\n0,0\n0,1\n1,0\n",
        "state_small.bin": b"\x03\x00" + recycle_state(7, 3, 1),
        # --model takes GGUF files too (told apart by the magic).
        "model.gguf": b"\x00\x00" + gguf_llama({}, seed=6),
        "model_sampled.gguf": b"\x00\x01" + gguf_llama({"embd": "Q8_0", "k": "F16", "o": "Q4_0"}, seed=7),
    }
    # fuzz_ngram: byte 0 steers (bit 0: rewrite the checksum, bit 1: the
    # header's vocabulary), then a table file.
    seeds["fuzz_ngram"] = {
        "three_lines.ngram": b"\x02" + ngram_table([[1, 3, 5], [1, 3, 6], [1, 4, 6]], 8),
        "repeats.ngram": b"\x03" + ngram_table([[i % 5 for i in range(40)], [2, 3, 2, 3, 2, 3, 4]], 7, 0x1234),
        "empty.ngram": b"\x02" + ngram_table([], 7),
    }
    # fuzz_bpe: byte 0 options (bit 0 parse special, bit 1 add special,
    # bits 2-4 the pre-tokenizer, bit 5 SentencePiece, bit 6 a system
    # message), byte 1 m, 2m bytes naming token pairs, then the text.
    abc = bytes([2, 3, ord("a"), ord("b"), 0, 0, ord("c"), 0]) + b" ab"  # a b, ab c, .. (BPE ids = bytes)
    seeds["fuzz_bpe"] = {
        "gpt2.txt": b"\x00\x02" + bytes([ord("a"), ord("b"), ord("h"), ord("e")]) +
        b"Hello, world! I'm 12345 ab abab\n\n  x",
        "smollm_special.txt": b"\x05\x01" + bytes([ord("a"), ord("b")]) + b"<|im_start|>user\n<u>ab 007<|im_end|>",
        "llama3.txt": b"\x0b\x00" + "Héllo wörld 😶‍🌫️ \t\r\n 1234567 ΑΒΓ".encode(),
        "default_pre.txt": b"\x10\x00" + b"$x+=3; a<=b ^~| 123456",
        "ill_formed.txt": b"\x00\x00" + b"a\xffb\xc3(\xed\xa0\x80\xf7\xbf\xbf\xbf\xe2\x82",
        "spm.txt": b"\x20\x02" + bytes([4, 5, 7, 8]) + b" ab ba\xc3\xa9 <s> x",
        "chat_system.txt": b"\x40" + abc,
    }
    for target, files in seeds.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
