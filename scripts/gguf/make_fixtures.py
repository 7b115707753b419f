#!/usr/bin/env python3
"""scripts/gguf/make_fixtures.py — writes the tiny GGUF test fixtures of
data/fixtures/gguf/ with the gguf package (PyPI, pinned in requirements.txt):
one Llama of 2 layers, dim 64, 4 query / 2 KV heads of dim 16, SwiGLU 96,
vocabulary 72, context 128, with random weights, stored once per tensor type
deco reads, plus one file of GGUF version 2:

  tiny_f32.gguf      v3, every tensor F32, a separate output.weight
  tiny_f16.gguf      v3, matrices F16 (norms F32, as llama.cpp writes them), tied
  tiny_bf16.gguf     v3, matrices BF16, tied
  tiny_q8_0.gguf     v3, matrices Q8_0, tied
  tiny_q4_0.gguf     v3, matrices Q4_0, tied
  tiny_q4_1.gguf     v3, matrices Q4_1, tied; general.alignment 64 and a
                     deco.test.* key of every metadata type (for the getters)
  tiny_v2.gguf       version 2, SmolLM2's mix: token_embd Q8_0, other
                     matrices Q4_1, norms F32, tied

For each NAME.gguf, NAME.expect.f32 holds the first min(n, 256) values of
every tensor, in file order, as the gguf package dequantises them
(gguf.quants.dequantize; little-endian float32). tiny_q4_1.fields.txt lists
where each field of tiny_q4_1.gguf starts, found by an independent walk of
the bytes here, with the text deco's error must contain when the file is cut
there ("OFFSET<TAB>FRAGMENT" per line); tests/test_gguf.c cuts the file at
every byte. GGUF versions 2 and 3 are byte-identical for little-endian
files (3 only added big-endian support), so the v2 file is written as v3 and
its version field set to 2, as the gguf package writes only version 3.

Deterministic: the same package versions write the same bytes.
Usage: python3 scripts/gguf/make_fixtures.py [OUT_DIR]   (default
data/fixtures/gguf); with the environment of requirements.txt, e.g.
  python3 -m venv .venv-gguf && .venv-gguf/bin/pip install -r scripts/gguf/requirements.txt
  .venv-gguf/bin/python scripts/gguf/make_fixtures.py
"""
import os
import struct
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, CONTEXT = 64, 96, 2, 4, 2, 72, 128
HEAD_DIM = DIM // HEADS
EXPECT_PER_TENSOR = 256


def weights(seed, separate_output):
    """name -> float32 array of numpy shape (rows, cols) = GGUF dims reversed,
    in the order llama.cpp's converter writes a Llama's tensors."""
    rng = np.random.default_rng(seed)

    def mat(rows, cols):
        # Uniform in +-2/sqrt(cols): activations stay O(1) and logits spread.
        return ((rng.random((rows, cols)) * 2 - 1) * (2.0 / np.sqrt(cols))).astype(np.float32)

    def norm():
        return (1.0 + (rng.random(DIM) * 0.4 - 0.2)).astype(np.float32)

    w = {"token_embd.weight": (rng.random((VOCAB, DIM)) * 2 - 1).astype(np.float32)}
    for l in range(LAYERS):
        p = "blk.%d." % l
        w[p + "attn_norm.weight"] = norm()
        w[p + "attn_q.weight"] = mat(HEADS * HEAD_DIM, DIM)
        w[p + "attn_k.weight"] = mat(KV_HEADS * HEAD_DIM, DIM)
        w[p + "attn_v.weight"] = mat(KV_HEADS * HEAD_DIM, DIM)
        w[p + "attn_output.weight"] = mat(DIM, HEADS * HEAD_DIM)
        w[p + "ffn_norm.weight"] = norm()
        w[p + "ffn_gate.weight"] = mat(HIDDEN, DIM)
        w[p + "ffn_up.weight"] = mat(HIDDEN, DIM)
        w[p + "ffn_down.weight"] = mat(DIM, HIDDEN)
    w["output_norm.weight"] = norm()
    if separate_output:
        w["output.weight"] = mat(VOCAB, DIM)
    # Blocks the quantisers treat specially: a constant run (Q4_1's d = 0,
    # Q4_0/Q8_0 with one value), zeros, and for F16/BF16 a subnormal and -0.
    q = w["blk.0.attn_q.weight"]
    q[0, :32] = 0.25
    q[1, :32] = 0.0
    q[2, 0] = 3e-6
    q[2, 1] = -0.0
    return w


def encode(arr, qtype):
    """Bytes of arr stored as qtype, and their dequantised float32 values."""
    if qtype == QT.F32:
        raw = arr.astype(np.float32)
        return raw, raw.copy()
    if qtype == QT.F16:
        raw = arr.astype(np.float16)
        return raw, raw.astype(np.float32)
    raw = gguf.quants.quantize(arr, qtype)
    return raw, gguf.quants.dequantize(raw, qtype).astype(np.float32).reshape(arr.shape)


def add_metadata(wr, name, extra_test_keys):
    wr.add_name(name)
    wr.add_block_count(LAYERS)
    wr.add_context_length(CONTEXT)
    wr.add_embedding_length(DIM)
    wr.add_feed_forward_length(HIDDEN)
    wr.add_head_count(HEADS)
    wr.add_head_count_kv(KV_HEADS)
    wr.add_rope_freq_base(10000.0)
    wr.add_layer_norm_rms_eps(1e-5)
    wr.add_uint32("llama.vocab_size", VOCAB)
    wr.add_rope_dimension_count(HEAD_DIM)
    wr.add_tokenizer_model("llama")
    wr.add_token_list(["<unk>", "<s>", "</s>"] + ["tok%d" % i for i in range(3, VOCAB)])
    wr.add_token_types([2, 3, 3] + [1] * (VOCAB - 3))
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    if extra_test_keys:
        T = gguf.GGUFValueType
        wr.add_uint8("deco.test.u8", 200)
        wr.add_int8("deco.test.i8", -100)
        wr.add_uint16("deco.test.u16", 60000)
        wr.add_int16("deco.test.i16", -30000)
        wr.add_uint32("deco.test.u32", 4000000000)
        wr.add_int32("deco.test.i32", -2000000000)
        wr.add_uint64("deco.test.u64", 2**63 + 5)
        wr.add_int64("deco.test.i64", -(2**40))
        wr.add_float32("deco.test.f32", 1.5)
        wr.add_float64("deco.test.f64", 2.25)
        wr.add_float64("deco.test.f64_big", 1e300)
        wr.add_bool("deco.test.bool", True)
        wr.add_string("deco.test.string", "h\u00e9llo")
        wr.add_key_value("deco.test.ints", [1, -2, 3], T.ARRAY, sub_type=T.INT32)
        wr.add_key_value("deco.test.u8s", [0, 255, 7], T.ARRAY, sub_type=T.UINT8)
        wr.add_key_value("deco.test.floats", [0.5, -1.25], T.ARRAY, sub_type=T.FLOAT32)
        wr.add_key_value("deco.test.doubles", [0.125, 3.0, -8.5], T.ARRAY, sub_type=T.FLOAT64)
        wr.add_key_value("deco.test.bools", [True, False], T.ARRAY, sub_type=T.BOOL)
        wr.add_key_value("deco.test.strings", ["a", "", "ccc"], T.ARRAY, sub_type=T.STRING)


def write(path, name, w, type_of, version=3, alignment=None, extra_test_keys=False):
    wr = gguf.GGUFWriter(path, "llama")
    if alignment is not None:
        wr.add_custom_alignment(alignment)
    add_metadata(wr, name, extra_test_keys)
    expect = []
    for tname, arr in w.items():
        qtype = type_of(tname)
        raw, deq = encode(arr, qtype)
        if qtype in (QT.F32, QT.F16):
            wr.add_tensor(tname, raw)
        else:
            wr.add_tensor(tname, raw, raw_shape=raw.shape, raw_dtype=qtype)
        expect.append(deq.reshape(-1)[:EXPECT_PER_TENSOR])
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    if version != 3:
        with open(path, "r+b") as f:
            f.seek(4)
            f.write(struct.pack("<I", version))
    np.concatenate(expect).astype("<f4").tofile(path[: -len(".gguf")] + ".expect.f32")


def walk_fields(data):
    """Field boundaries of a GGUF file, by a walk written here from the
    format description (not the gguf package's reader): (offset, fragment of
    the message deco gives when the file ends inside that field)."""
    out = []
    pos = 0

    def u32():
        nonlocal pos
        v = struct.unpack_from("<I", data, pos)[0]
        pos += 4
        return v

    def u64():
        nonlocal pos
        v = struct.unpack_from("<Q", data, pos)[0]
        pos += 8
        return v

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    overrides = []
    for field in ("magic", "version", "tensor_count", "metadata_kv_count"):
        out.append((pos, "header field " + field))
        pos += 4 if field in ("magic", "version") else 8
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
    alignment = 32

    def value(t, label):
        nonlocal pos
        out.append((pos, label))
        if t == 8:
            n = u64()
            if n:
                out.append((pos, label))
            pos += n
        else:
            pos += sizes[t]

    for i in range(n_kv):
        out.append((pos, "metadata entry %d key" % i))
        n = u64()
        key = data[pos:pos + n].decode()
        pos += n
        tag = "metadata entry %d ('%s')" % (i, key)
        out.append((pos, tag + " value type"))
        t = u32()
        if t != 9:
            if key == "general.alignment":
                alignment = struct.unpack_from("<I", data, pos)[0]
            value(t, tag + " value")
            continue
        out.append((pos, tag + " array element type"))
        et = u32()
        out.append((pos, tag + " array length"))
        n = u64()
        # deco first checks that the elements' minimum size (8 bytes per
        # string, the scalar size otherwise) fits in what is left, and names
        # the array length when it does not.
        lo, hi = pos, pos + n * (8 if et == 8 else sizes[et])
        if et in (7, 8):
            for j in range(n):
                value(et, tag + " array element %d" % j)
        else:
            pos += n * sizes[et]
        overrides.append((lo, hi, tag + " array length"))
    tensors = []
    for i in range(n_tensors):
        out.append((pos, "tensor %d name" % i))
        n = u64()
        name = data[pos:pos + n].decode()
        pos += n
        tag = "tensor %d ('%s')" % (i, name)
        out.append((pos, tag + " n_dims"))
        nd = u32()
        dims = []
        for d in range(nd):
            out.append((pos, tag + " dims[%d]" % d))
            dims.append(u64())
        out.append((pos, tag + " type"))
        t = u32()
        out.append((pos, tag + " offset"))
        off = u64()
        blk, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(t)]
        tensors.append((tag, off, int(np.prod(dims)) // blk * nbytes))
    start = (pos + alignment - 1) // alignment * alignment
    # Cut inside the padding or tensor j's data (after tensor j-1's end):
    # tensor j is the first one found past the end.
    prev_end = pos
    for tag, off, nbytes in tensors:
        out.append((prev_end, tag + " data"))
        prev_end = start + off + nbytes
    out.append((prev_end, "END"))
    # Before reading any entry, deco checks that the counts fit: 14 bytes at
    # least per metadata entry, 33 per tensor entry, after the header.
    overrides.append((24, 24 + n_kv * 14 + n_tensors * 33, "header fields tensor_count="))
    for lo, hi, label in overrides:
        out = override(out, lo, hi, label)
    return out


def override(entries, lo, hi, label):
    """Cuts in [lo, hi) get label; the rest keep theirs (the label of the
    last entry at or before the cut)."""
    if hi <= lo:
        return entries
    at_hi = [e for e in entries if e[0] <= hi][-1][1]
    kept = [e for e in entries if e[0] < lo] + [(lo, label)]
    after = [e for e in entries if e[0] >= hi]
    if not after or after[0][0] != hi:
        after = [(hi, at_hi)] + after
    return kept + after


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "data", "fixtures", "gguf")
    os.makedirs(out, exist_ok=True)
    norm = lambda n: n.endswith("_norm.weight")
    for i, (suffix, qtype) in enumerate([("f32", QT.F32), ("f16", QT.F16), ("bf16", QT.BF16), ("q8_0", QT.Q8_0),
                                         ("q4_0", QT.Q4_0), ("q4_1", QT.Q4_1)]):
        w = weights(1000 + i, separate_output=(qtype == QT.F32))
        is_q41 = qtype == QT.Q4_1
        write(os.path.join(out, "tiny_%s.gguf" % suffix), "deco tiny " + suffix, w,
              lambda n, q=qtype: QT.F32 if norm(n) else q, alignment=64 if is_q41 else None,
              extra_test_keys=is_q41)
    w = weights(2000, separate_output=False)
    write(os.path.join(out, "tiny_v2.gguf"), "deco tiny v2", w,
          lambda n: QT.F32 if norm(n) else (QT.Q8_0 if n == "token_embd.weight" else QT.Q4_1), version=2)
    with open(os.path.join(out, "tiny_q4_1.gguf"), "rb") as f:
        data = f.read()
    with open(os.path.join(out, "tiny_q4_1.fields.txt"), "w") as f:
        f.write("# tiny_q4_1.gguf: offset<TAB>what deco's message names when the file ends there "
                "(scripts/gguf/make_fixtures.py)\n")
        for off, frag in walk_fields(data):
            f.write("%d\t%s\n" % (off, frag))
    for name in sorted(os.listdir(out)):
        if name.startswith("tiny_"):
            print("%8d  %s" % (os.path.getsize(os.path.join(out, name)), name))


if __name__ == "__main__":
    main()
