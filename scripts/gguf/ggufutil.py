"""scripts/gguf/ggufutil.py — helpers shared by the scripts of scripts/gguf/
(not run by itself): the repository's folders, a file's sha256, GGUF
metadata copied byte for byte from a reader to a writer, tensors dequantised
by the gguf package, and the top-k logits fixture format (.topk) the float64
reference writes.

.topk format (little-endian), one teacher-forced run of one model:
  offset 0   char[8]   "DECOTOPK"
         8   uint32    format version, 1
        12   uint32    T, positions
        16   uint32    k, logits kept per position (16)
        20   uint32    the model's vocabulary size
        24   uint8[32] sha256 of the GGUF file the logits come from
        56   int32[T]  the input ids: position p is fed ids[p] (teacher forcing,
                       no BOS added; position 0 is the first id)
  then T records, one per position p (the logits after reading ids[0..p]):
             int32[k]   the k ids with the largest logits, largest first (ties:
                        the lower id first)
             float64[k] their logits
             float64    logsumexp of the whole row (log of the softmax's
                        denominator), so probabilities can be checked too
"""
import hashlib
import os
import struct

import numpy as np

import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS_DIR = os.environ.get("DECO_MODELS_DIR", os.path.join(ROOT, "models-cache"))
SMOLLM2 = os.path.join(MODELS_DIR, "SmolLM2-135M-Instruct.Q4_1.gguf")
FIXTURES = os.path.join(ROOT, "data", "fixtures", "gguf")

TOPK_MAGIC = b"DECOTOPK"
TOPK_VERSION = 1


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def field_value(field):
    """A metadata value as the writer takes it back: strings as raw bytes (no
    UTF-8 round trip), arrays as lists, scalars as Python numbers."""
    t = field.types[0]
    T = gguf.GGUFValueType
    if t == T.STRING:
        return bytes(field.parts[field.data[0]])
    if t == T.ARRAY:
        sub = field.types[-1]
        if sub == T.STRING:
            return [bytes(field.parts[i]) for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    return field.parts[field.data[0]].tolist()[0]


def copy_metadata(reader, writer, overrides=None, skip=()):
    """Copies every metadata entry but the header's (GGUF.*), the
    architecture and the alignment (the writer adds those) in file order;
    overrides maps a key to (value, type) written instead."""
    overrides = dict(overrides or {})
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.alignment") or key in skip:
            continue
        if key in overrides:
            value, vtype = overrides.pop(key)
            writer.add_key_value(key, value, vtype)
            continue
        t = field.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, field_value(field), t, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, field_value(field), t)
    for key, (value, vtype) in overrides.items():
        writer.add_key_value(key, value, vtype)


def dequantize(tensor):
    """float32 values of a ReaderTensor, numpy shape = GGUF dims reversed
    ((rows, cols) for a matrix), by the gguf package's dequantisers."""
    qt = tensor.tensor_type
    if qt == gguf.GGMLQuantizationType.F32:
        return np.array(tensor.data, dtype=np.float32)
    if qt == gguf.GGMLQuantizationType.F16:
        return np.array(tensor.data, dtype=np.float16).astype(np.float32)
    shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
    return gguf.quants.dequantize(np.array(tensor.data), qt).astype(np.float32).reshape(shape)


def metadata(reader):
    """key -> Python value (strings decoded leniently) of a reader's fields."""
    out = {}
    for key, field in reader.fields.items():
        v = field_value(field)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        out[key] = v
    return out


def write_topk(path, ids, logits, model_sha256, k=16):
    """ids: T input ids; logits: [T][vocab] float64 rows."""
    logits = np.asarray(logits, dtype=np.float64)
    T, vocab = logits.shape
    with open(path, "wb") as f:
        f.write(TOPK_MAGIC + struct.pack("<4I", TOPK_VERSION, T, k, vocab) + bytes.fromhex(model_sha256))
        f.write(np.asarray(ids, dtype="<i4").tobytes())
        for row in logits:
            order = np.lexsort((np.arange(vocab), -row))[:k]
            m = row.max()
            lse = m + np.log(np.exp(row - m).sum())
            f.write(order.astype("<i4").tobytes() + row[order].astype("<f8").tobytes() + struct.pack("<d", lse))


def read_topk(path):
    """-> dict(ids, top_ids [T][k], top_logits [T][k], lse [T], vocab, sha256)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != TOPK_MAGIC:
        raise ValueError("%s: not a .topk file" % path)
    version, T, k, vocab = struct.unpack_from("<4I", data, 8)
    if version != TOPK_VERSION:
        raise ValueError("%s: format version %d" % (path, version))
    sha = data[24:56].hex()
    pos = 56
    ids = np.frombuffer(data, "<i4", T, pos)
    pos += 4 * T
    rec = np.dtype([("ids", "<i4", (k,)), ("logits", "<f8", (k,)), ("lse", "<f8")])
    recs = np.frombuffer(data, rec, T, pos)
    if pos + rec.itemsize * T != len(data):
        raise ValueError("%s: %d bytes, expected %d" % (path, len(data), pos + rec.itemsize * T))
    return {"ids": ids.copy(), "top_ids": recs["ids"].copy(), "top_logits": recs["logits"].copy(),
            "lse": recs["lse"].copy(), "vocab": vocab, "sha256": sha}


def read_ids(path):
    with open(path) as f:
        return [int(x) for x in f.read().replace(",", " ").split()]


def write_ids(path, ids):
    with open(path, "w") as f:
        f.write(",".join(str(int(i)) for i in ids) + "\n")
