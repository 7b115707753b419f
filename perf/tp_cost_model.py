#!/usr/bin/env python3
"""perf/tp_cost_model.py — the tensor-parallel cost model (docs/PERF.md,
"Tensor parallelism"): predicted decode and verification step times per TP
size from one rank's measured shard times (perf/bench_tp_layer.c's CSV) and
an all-reduce time whose latency and bus bandwidth are ASSUMED, not measured.

Per shape, step (decode: T = 1; verify: T = 81 tree nodes) and TP size N:

  compute    = n_layers x us_per_layer(N) + us_rest(N)      (measured; us_rest:
               embedding, final norm, replicated classifier, launch overhead)
  bytes      = T x dim x bytes per value (the model dtype: bf16 2, f32 4);
               two all-reduces of it per layer (after O and after down),
               nothing else per step (docs/PERF.md's byte table)
  allreduce  = 0 at N = 1, else latency + 2 (N - 1) / N x bytes / busbw
               (ring all-reduce; busbw is the bus bandwidth as nccl-tests
               report it: algorithm bandwidth x 2 (N - 1) / N)
  comm       = 2 x n_layers x allreduce
  step       = compute + comm   (no overlap: each all-reduce sits between a
               projection and the residual add that the next op reads)

The speedup is over TP 1 when measured, else over the smallest TP measured
(named). The all-reduces "dominate" from the first TP size where comm >
compute.

Layer-parallel drafting across ranks (EasySpec; deco_model_create_view_ranks)
is predicted from the same TP 1 decode rows: a draft forward (T = 1) of the
whole model whose middle layers run in groups of k <= N consecutive layers,
the group's k attentions on k ranks at once and its k MLPs in order on every
rank. The share of a layer's time that is attention, f, is ASSUMED to be its
share of the layer's weight bytes (decode streams the weights; the K/V read
is left out): attention dim x head_dim x (heads + 2 kv_heads) + heads x
head_dim x dim values, MLP 3 x dim x hidden. Per group of k > 1:

  group      = f x t + broadcast + all-gather + k x (1 - f) x t
  broadcast  = latency + bytes / busbw          (the group's input)
  all-gather = latency + (k - 1) x bytes / busbw   (the k attention outputs)

against k x t sequentially; the first and last layers run alone, and the
rest (us_rest) is the same for both.

  tp_cost_model.py CSV [CSV ...] [--link 'NAME:LATENCY_US:BUSBW_GBS' ...]
                   [--predictions OUT.csv]

Markdown on stdout; --predictions writes every prediction as CSV. --link
replaces the default interconnects (each one an assumption). Python 3,
standard library only.
"""

import argparse
import csv
import math
import sys

# Assumed interconnects: (name, latency per all-reduce in us, bus bandwidth
# in GB/s). Assumptions, not measurements: docs/ALGORITHMS.md quotes ~19-32 us
# for NCCL on 8xH100 from 128 B to 1 MB and ~4-14 us for a one-shot custom
# all-reduce; the bandwidths are round figures below each link's peak.
DEFAULT_LINKS = [
    ("NVLink 4 + NVSwitch, one-shot custom all-reduce", 6.0, 450.0),
    ("NVLink 4 + NVSwitch, NCCL", 20.0, 360.0),
    ("NVLink 3 (A100), NCCL", 25.0, 230.0),
    ("PCIe Gen5 x16, NCCL", 30.0, 40.0),
    ("PCIe Gen4 x16, NCCL", 40.0, 20.0),
]

DTYPE_BYTES = {"bf16": 2, "f16": 2, "f32": 4}

REQUIRED = ("shape", "tp", "step", "tokens", "dim", "n_layers", "dtype", "us_per_layer", "us_rest", "device")


def parse_link(text):
    parts = text.rsplit(":", 2)
    if len(parts) != 3:
        raise ValueError("--link %r: expected NAME:LATENCY_US:BUSBW_GBS" % text)
    name, lat, bw = parts[0], float(parts[1]), float(parts[2])
    if not name or lat < 0 or not bw > 0 or math.isinf(lat) or math.isinf(bw):
        raise ValueError("--link %r: a name, latency >= 0 and bandwidth > 0" % text)
    return (name, lat, bw)


def read_rows(paths):
    """Rows of bench_tp_layer's CSV, keyed (shape, step) -> {tp: row}."""
    out = {}
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError("%s: no column %s" % (path, ", ".join(missing)))
            for line, r in enumerate(reader, start=2):
                try:
                    row = {
                        "shape": r["shape"],
                        "step": r["step"],
                        "tp": int(r["tp"]),
                        "tokens": int(r["tokens"]),
                        "dim": int(r["dim"]),
                        "n_layers": int(r["n_layers"]),
                        "dtype": r["dtype"],
                        "us_per_layer": float(r["us_per_layer"]),
                        "us_rest": float(r["us_rest"]),
                        "device": r["device"],
                        "heads": int(r.get("heads") or 0),
                        "kv_heads": int(r.get("kv_heads") or 0),
                        "hidden": int(r.get("hidden") or 0),
                    }
                except (TypeError, ValueError) as e:
                    raise ValueError("%s:%d: %s" % (path, line, e))
                if row["dtype"] not in DTYPE_BYTES:
                    raise ValueError("%s:%d: dtype %r" % (path, line, row["dtype"]))
                if row["tp"] < 1 or row["tokens"] < 1 or row["dim"] < 1 or row["n_layers"] < 1:
                    raise ValueError("%s:%d: tp, tokens, dim and n_layers must be >= 1" % (path, line))
                key = (row["shape"], row["step"])
                out.setdefault(key, {})[row["tp"]] = row
    return out


def allreduce_bytes(row):
    """Bytes of one all-reduce of the step: T x dim values in the model dtype."""
    return row["tokens"] * row["dim"] * DTYPE_BYTES[row["dtype"]]


def allreduce_us(nbytes, tp, latency_us, busbw_gbs):
    """One ring all-reduce: latency + 2 (N - 1) / N x bytes / bus bandwidth."""
    if tp == 1:
        return 0.0
    return latency_us + 2.0 * (tp - 1) / tp * nbytes / (busbw_gbs * 1e3)


def predict(rows_by_tp, link):
    """Predictions for one (shape, step) over its TP sizes on one link."""
    name, lat, bw = link
    tps = sorted(rows_by_tp)
    base_tp = tps[0]
    preds = []
    for tp in tps:
        r = rows_by_tp[tp]
        compute = r["n_layers"] * r["us_per_layer"] + r["us_rest"]
        nbytes = allreduce_bytes(r)
        ar = allreduce_us(nbytes, tp, lat, bw)
        comm = 2 * r["n_layers"] * ar
        preds.append({
            "shape": r["shape"], "step": r["step"], "tp": tp, "link": name, "latency_us": lat, "busbw_gbs": bw,
            "compute_us": compute, "allreduce_bytes": nbytes, "step_bytes": 2 * r["n_layers"] * nbytes,
            "allreduce_us": ar, "comm_us": comm, "step_us": compute + comm,
            "comm_share": comm / (compute + comm) if compute + comm > 0 else 0.0, "base_tp": base_tp,
        })
    base = preds[0]["step_us"]
    for p in preds:
        p["speedup"] = base / p["step_us"] if p["step_us"] > 0 else float("nan")
    return preds


def dominates_from(preds):
    """The first TP size whose all-reduces take longer than its compute, or None."""
    for p in preds:
        if p["comm_us"] > p["compute_us"]:
            return p["tp"]
    return None


LAYER_PARALLEL_N = (2, 4)


def attention_share(row):
    """f: attention's share of a layer's weight values (an assumption for its
    share of the layer's decode time), or None without the head counts."""
    heads, kv, hidden, dim = row["heads"], row["kv_heads"], row["hidden"], row["dim"]
    if heads < 1 or kv < 1 or hidden < 1 or dim % heads:
        return None
    hd = dim // heads
    att = dim * hd * (heads + 2 * kv) + heads * hd * dim
    return att / (att + 3 * dim * hidden)


def layer_parallel(row, link, n):
    """A layer-parallel draft forward across n ranks against the sequential
    one (module docstring); row: a TP 1 decode row."""
    name, lat, bw = link
    f = attention_share(row)
    t, L, rest = row["us_per_layer"], row["n_layers"], row["us_rest"]
    nbytes = allreduce_bytes(row)
    middle = max(L - 2, 0)
    sizes = [n] * (middle // n) + ([middle % n] if middle % n else [])
    par = (L - middle) * t + rest
    comm = 0.0
    for k in sizes:
        if k == 1:
            par += t
            continue
        c = (lat + nbytes / (bw * 1e3)) + (lat + (k - 1) * nbytes / (bw * 1e3))
        comm += c
        par += f * t + c + k * (1 - f) * t
    seq = L * t + rest
    return {"shape": row["shape"], "n": n, "link": name, "attention_share": f, "sequential_us": seq,
            "parallel_us": par, "comm_us": comm, "speedup": seq / par if par > 0 else float("nan")}


def fmt_bytes(n):
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            v = n / size
            return ("%.1f %s" % (v, unit)) if v != int(v) else ("%d %s" % (v, unit))
    return "%d B" % n


def fmt_ms(us):
    return "%.3f" % (us / 1e3)


def markdown(data, links):
    out = []
    keys = sorted(data, key=lambda k: (k[0], 0 if k[1] == "decode" else 1, k[1]))
    devices = sorted({r["device"] for by_tp in data.values() for r in by_tp.values()})
    out.append("Measured: one rank's shard on %s (perf/bench_tp_layer.c)." % ", ".join(devices))
    out.append("")
    out.append("| shape | step | TP | µs per layer | µs besides the layers | layers | compute per step (ms) |"
               " one all-reduce | all-reduce bytes per step |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for key in keys:
        for tp in sorted(data[key]):
            r = data[key][tp]
            nb = allreduce_bytes(r)
            out.append("| %s | %s (T = %d) | %d | %.1f | %.1f | %d | %s | %s | %s |" % (
                r["shape"], r["step"], r["tokens"], tp, r["us_per_layer"], r["us_rest"], r["n_layers"],
                fmt_ms(r["n_layers"] * r["us_per_layer"] + r["us_rest"]), fmt_bytes(nb),
                fmt_bytes(2 * r["n_layers"] * nb)))
    out.append("")
    out.append("Assumed interconnects (assumptions, not measurements; all-reduce time = latency + "
               "2 (N−1)/N × bytes / bus bandwidth):")
    out.append("")
    out.append("| interconnect | latency per all-reduce (µs) | bus bandwidth (GB/s) | status |")
    out.append("|---|---|---|---|")
    for name, lat, bw in links:
        out.append("| %s | %g | %g | assumption |" % (name, lat, bw))
    out.append("")
    summary = []
    for key in keys:
        shape, step = key
        tps = sorted(data[key])
        out.append("Predicted %s step of %s (ms; speedup over TP %d; all-reduce share of the step):" % (
            step, shape, tps[0]))
        out.append("")
        out.append("| interconnect (assumption) | " + " | ".join("TP %d" % t for t in tps) + " |")
        out.append("|---|" + "---|" * len(tps))
        for link in links:
            preds = predict(data[key], link)
            cells = ["%s (%.2f×, %.0f%%)" % (fmt_ms(p["step_us"]), p["speedup"], 100 * p["comm_share"])
                     for p in preds]
            out.append("| %s | %s |" % (link[0], " | ".join(cells)))
            summary.append((shape, step, link[0], dominates_from(preds), tps[-1]))
        out.append("")
    out.append("Where the all-reduces start to dominate (the first TP size whose all-reduce time exceeds its"
               " compute):")
    out.append("")
    out.append("| shape | step | interconnect (assumption) | all-reduces exceed compute from |")
    out.append("|---|---|---|---|")
    for shape, step, link, tp, last in summary:
        out.append("| %s | %s | %s | %s |" % (shape, step, link, "TP %d" % tp if tp else "not up to TP %d" % last))
    lp = [data[k][1] for k in keys if k[1] == "decode" and 1 in data[k] and attention_share(data[k][1])]
    if lp:
        out.append("")
        out.append("Predicted layer-parallel draft forward across N ranks (T = 1; groups of N middle layers, one "
                   "attention per rank, the MLPs in order; attention's share f of a layer's time assumed from its "
                   "weight bytes): ms, speedup over the sequential draft on one GPU, collectives per forward:")
        out.append("")
        out.append("| shape (f) | interconnect (assumption) | sequential | " +
                   " | ".join("N = %d" % n for n in LAYER_PARALLEL_N) + " |")
        out.append("|---|---|---|" + "---|" * len(LAYER_PARALLEL_N))
        for r in lp:
            for link in links:
                ps = [layer_parallel(r, link, n) for n in LAYER_PARALLEL_N]
                out.append("| %s (%.2f) | %s | %s | %s |" % (
                    r["shape"], ps[0]["attention_share"], link[0], fmt_ms(ps[0]["sequential_us"]),
                    " | ".join("%s (%.2f×, %s ms)" % (fmt_ms(p["parallel_us"]), p["speedup"], fmt_ms(p["comm_us"]))
                               for p in ps)))
    return "\n".join(out) + "\n"


LP_FIELDS = ["shape", "n", "link", "attention_share", "sequential_us", "parallel_us", "comm_us", "speedup"]

PRED_FIELDS = ["shape", "step", "tp", "link", "latency_us", "busbw_gbs", "compute_us", "allreduce_bytes", "step_bytes",
               "allreduce_us", "comm_us", "step_us", "speedup", "base_tp", "comm_share"]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="+", help="bench_tp_layer CSV files")
    ap.add_argument("--link", action="append", default=[], help="NAME:LATENCY_US:BUSBW_GBS (an assumption)")
    ap.add_argument("--predictions", help="write every prediction as CSV here")
    ap.add_argument("--layer-parallel", dest="layer_parallel",
                    help="write the layer-parallel draft predictions as CSV here")
    a = ap.parse_args(argv)
    try:
        links = [parse_link(t) for t in a.link] or DEFAULT_LINKS
        data = read_rows(a.csv)
    except (OSError, ValueError) as e:
        print("tp_cost_model: %s" % e, file=sys.stderr)
        return 1
    if not data:
        print("tp_cost_model: no rows in %s" % ", ".join(a.csv), file=sys.stderr)
        return 1
    sys.stdout.write(markdown(data, links))
    if a.predictions:
        with open(a.predictions, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=PRED_FIELDS, lineterminator="\n")
            w.writeheader()
            for key in sorted(data):
                for link in links:
                    for p in predict(data[key], link):
                        w.writerow({k: ("%.6g" % p[k]) if isinstance(p[k], float) else p[k] for k in PRED_FIELDS})
    if a.layer_parallel:
        with open(a.layer_parallel, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LP_FIELDS, lineterminator="\n")
            w.writeheader()
            for key in sorted(data):
                r = data[key].get(1)
                if key[1] != "decode" or not r or not attention_share(r):
                    continue
                for link in links:
                    for n in LAYER_PARALLEL_N:
                        p = layer_parallel(r, link, n)
                        w.writerow({k: ("%.6g" % p[k]) if isinstance(p[k], float) else p[k] for k in LP_FIELDS})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
