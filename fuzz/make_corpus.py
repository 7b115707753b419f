#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: tiny valid inputs, made here
(no real model). Usage: make_corpus.py OUT_DIR -> OUT_DIR/fuzz_checkpoint/,
OUT_DIR/fuzz_tokenizer/, OUT_DIR/fuzz_recycle_state/, OUT_DIR/fuzz_template/,
OUT_DIR/fuzz_cli/."""
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
    }
    for target, files in seeds.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
