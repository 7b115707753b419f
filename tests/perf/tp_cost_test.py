#!/usr/bin/env python3
"""tests/perf/tp_cost_test.py BENCH — the tensor-parallel cost model's
plumbing on the CPU (ctest tp_cost_model, label cpu):
- perf/tp_cost_model.py on a hand-made CSV gives the predictions worked out
  by hand here (all-reduce bytes, ring all-reduce time, step, speedup, where
  the all-reduces start to dominate; a layer-parallel draft forward across
  ranks), and refuses a CSV without its columns;
- bench_tp_layer (BENCH) on smollm2-135m at TP 1 and 3 (9 query heads: no
  TP 2, which it refuses naming 9 and 2) writes well-formed rows whose shard
  shapes are the plan's, and the model script reads them;
- perf/tp_cost.sh fails, naming the path, when the build lacks the bench.
Python 3, standard library only.
"""
import csv
import io
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "perf", "tp_cost_model.py")
SCRIPT = os.path.join(ROOT, "perf", "tp_cost.sh")
HEADER = ("bench,shape,tp,step,tokens,heads,kv_heads,hidden,dim,n_layers,dtype,layers_lo,layers_hi,us_lo,us_hi,"
          "us_per_layer,us_rest,layer_weight_bytes,mode,device,command")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def close(a, b, what, rel=1e-5):
    check(math.isclose(a, b, rel_tol=rel, abs_tol=1e-9), "%s: %r, expected %r" % (what, a, b))


def row(shape, tp, step, tokens, dim, layers, dtype, per_layer, rest):
    return ("tp_layer,%s,%d,%s,%d,1,1,1,%d,%d,%s,1,3,0,0,%r,%r,0,graph,test,cmd"
            % (shape, tp, step, tokens, dim, layers, dtype, per_layer, rest))


def model_arithmetic(tmp):
    rows = [HEADER,
            row("toy", 1, "decode", 1, 1024, 10, "bf16", 100.0, 200.0),
            row("toy", 2, "decode", 1, 1024, 10, "bf16", 50.0, 200.0),
            row("toy", 4, "decode", 1, 1024, 10, "bf16", 25.0, 200.0),
            row("toyf", 2, "verify", 81, 256, 2, "f32", 4.0, 5.0),
            row("toyf", 1, "verify", 81, 256, 2, "f32", 10.0, 5.0),
            row("big", 8, "decode", 1, 8192, 80, "bf16", 20.0, 400.0),
            row("big", 4, "decode", 1, 8192, 80, "bf16", 40.0, 400.0)]
    src = os.path.join(tmp, "toy.csv")
    with open(src, "w") as f:
        f.write("\n".join(rows) + "\n")
    pred = os.path.join(tmp, "pred.csv")
    r = subprocess.run([sys.executable, MODEL, src, "--link", "fast:10:100", "--link", "slow:30:10",
                        "--predictions", pred], capture_output=True, text=True)
    check(r.returncode == 0, "tp_cost_model on the hand-made CSV: exit %d: %s" % (r.returncode, r.stderr))
    if r.returncode != 0:
        return
    md = r.stdout
    with open(pred) as f:
        p = {(d["shape"], d["step"], int(d["tp"]), d["link"]): d for d in csv.DictReader(f)}
    check(len(p) == 14, "%d predictions, expected 14" % len(p))
    g = lambda s, st, tp, l, k: float(p[(s, st, tp, l)][k])
    # toy decode: one all-reduce of 1 x 1024 bf16 values = 2048 B, 2 x 10 per step.
    close(g("toy", "decode", 2, "fast", "allreduce_bytes"), 2048, "toy bytes")
    close(g("toy", "decode", 2, "fast", "step_bytes"), 40960, "toy step bytes")
    close(g("toy", "decode", 1, "fast", "step_us"), 1200, "toy TP 1 (no all-reduce)")
    close(g("toy", "decode", 1, "fast", "comm_us"), 0, "toy TP 1 comm")
    # TP 2, fast: 10 + 2 (1/2) 2048 / 1e5 = 10.02048 us; x 20 = 200.4096; + 700.
    close(g("toy", "decode", 2, "fast", "allreduce_us"), 10.02048, "toy TP 2 all-reduce")
    close(g("toy", "decode", 2, "fast", "step_us"), 900.4096, "toy TP 2 step")
    close(g("toy", "decode", 2, "fast", "speedup"), 1200 / 900.4096, "toy TP 2 speedup")
    # TP 4, slow: 30 + 2 (3/4) 2048 / 1e4 = 30.3072; x 20 = 606.144 > 450 of compute.
    close(g("toy", "decode", 4, "slow", "allreduce_us"), 30.3072, "toy TP 4 slow all-reduce")
    close(g("toy", "decode", 4, "slow", "step_us"), 1056.144, "toy TP 4 slow step")
    close(g("toy", "decode", 4, "slow", "comm_share"), 606.144 / 1056.144, "toy TP 4 slow share")
    # toyf verify, f32: 81 x 256 x 4 = 82944 B; TP 2 fast: 10 + 0.82944 = 10.82944; x 4 = 43.31776 > 13.
    close(g("toyf", "verify", 2, "fast", "allreduce_bytes"), 82944, "toyf bytes")
    close(g("toyf", "verify", 2, "fast", "step_us"), 56.31776, "toyf TP 2 step")
    close(g("toyf", "verify", 2, "fast", "speedup"), 25 / 56.31776, "toyf TP 2 speedup")
    # big: no TP 1, the speedup is over TP 4. TP 8 fast: 10 + 1.75 x 16384 / 1e5 = 10.28672.
    check(int(p[("big", "decode", 8, "fast")]["base_tp"]) == 4, "big's speedup base is TP 4")
    close(g("big", "decode", 8, "fast", "allreduce_us"), 10.28672, "big TP 8 all-reduce")
    step4 = 80 * 40 + 400 + 160 * (10 + 1.5 * 16384 / 1e5)
    step8 = 80 * 20 + 400 + 160 * 10.28672
    close(g("big", "decode", 8, "fast", "speedup"), step4 / step8, "big TP 8 speedup over TP 4")
    for line in ("| toy | decode | slow | TP 4 |", "| toy | decode | fast | not up to TP 4 |",
                 "| toyf | verify | fast | TP 2 |", "| fast | 10 | 100 | assumption |",
                 "| slow | 30 | 10 | assumption |",
                 "| toy | decode (T = 1) | 2 | 50.0 | 200.0 | 10 | 0.700 | 2 KiB | 40 KiB |",
                 "speedup over TP 4", "| fast | 1.200 (1.00×, 0%) | 0.900 (1.33×, 22%) |"):
        check(line in md, "markdown lacks %r" % line)
    # A CSV without its columns is refused, naming them.
    bad = os.path.join(tmp, "bad.csv")
    with open(bad, "w") as f:
        f.write("shape,tp\nx,1\n")
    r = subprocess.run([sys.executable, MODEL, bad], capture_output=True, text=True)
    check(r.returncode == 1 and "us_per_layer" in r.stderr, "a CSV without us_per_layer: exit %d, %r"
          % (r.returncode, r.stderr))


def layer_parallel_arithmetic(tmp):
    """The layer-parallel draft prediction on a hand-made TP 1 decode row:
    4 heads, 2 KV heads, hidden 24, dim 8 (head_dim 2): attention 8 x 2 x 8
    + 4 x 2 x 8 = 192 values, MLP 3 x 8 x 24 = 576, f = 0.25; 7 layers of
    100 us, 50 us besides; one forward's message 1 x 8 x 2 = 16 B."""
    src = os.path.join(tmp, "lp.csv")
    with open(src, "w") as f:
        f.write(HEADER + "\n")
        f.write("tp_layer,lp,1,decode,1,4,2,24,8,7,bf16,1,3,0,0,100.0,50.0,0,graph,test,cmd\n")
    out = os.path.join(tmp, "lp_pred.csv")
    r = subprocess.run([sys.executable, MODEL, src, "--link", "fast:10:100", "--link", "slow:30:0.001",
                        "--layer-parallel", out], capture_output=True, text=True)
    check(r.returncode == 0, "layer-parallel predictions: exit %d: %s" % (r.returncode, r.stderr))
    if r.returncode != 0:
        return
    with open(out) as f:
        p = {(int(d["n"]), d["link"]): d for d in csv.DictReader(f)}
    check(len(p) == 4, "%d layer-parallel predictions, expected 4" % len(p))
    g = lambda n, l, k: float(p[(n, l)][k])
    close(g(2, "fast", "attention_share"), 0.25, "attention share")
    close(g(2, "fast", "sequential_us"), 750, "sequential draft forward")
    # N = 2, fast: middle 5 = groups of 2, 2, 1; a group of 2: broadcast 10 + 16 / 1e5,
    # all-gather 10 + 16 / 1e5 -> 20.00032; 0.25 x 100 + 20.00032 + 2 x 75 = 195.00032;
    # 2 x 100 + 50 + 2 x 195.00032 + 100.
    close(g(2, "fast", "parallel_us"), 740.00064, "N = 2 fast")
    close(g(2, "fast", "comm_us"), 40.00064, "N = 2 fast collectives")
    close(g(2, "fast", "speedup"), 750 / 740.00064, "N = 2 fast speedup")
    # slow: 0.001 GB/s = 1 B/us, so the message is 16 us. N = 4: groups of 4 and 1;
    # broadcast 30 + 16, all-gather 30 + 3 x 16 -> 124; 25 + 124 + 300 = 449;
    # 250 + 449 + 100. N = 2: 46 + 46 = 92; 25 + 92 + 150 = 267; 250 + 2 x 267 + 100.
    close(g(4, "slow", "parallel_us"), 799, "N = 4 slow")
    close(g(4, "slow", "comm_us"), 124, "N = 4 slow collectives")
    close(g(2, "slow", "parallel_us"), 884, "N = 2 slow")
    close(g(4, "fast", "parallel_us"), 695.00064, "N = 4 fast")
    check("Predicted layer-parallel draft forward" in r.stdout, "the markdown has the layer-parallel table")


def bench_rows(bench, tmp):
    cmd = [bench, "--shape", "smollm2-135m", "--tp", "1,3", "--backend", "cpu", "--reps", "1", "--layers", "1,3",
           "--prefix", "32", "--threads", "1", "--device", "test-cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    check(r.returncode == 0, "bench_tp_layer: exit %d: %s" % (r.returncode, r.stderr[-2000:]))
    if r.returncode != 0:
        return
    lines = r.stdout.splitlines()
    check(lines[0] == HEADER, "bench header %r" % lines[0])
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    check(len(rows) == 4, "%d bench rows, expected 4" % len(rows))
    for rec in csv.reader(io.StringIO(r.stdout)):
        check(len(rec) == 21, "a row of %d fields: %r" % (len(rec), rec))
    # The shard shapes: 9/3 heads, FFN 1536, dim 576 (TP 3: 3 heads, 1 KV head, 512 columns).
    shard = {1: (9, 3, 1536), 3: (3, 1, 512)}
    seen = set()
    for d in rows:
        tp, step = int(d["tp"]), d["step"]
        seen.add((tp, step))
        h, kv, hid = shard.get(tp, (0, 0, 0))
        check((int(d["heads"]), int(d["kv_heads"]), int(d["hidden"])) == (h, kv, hid), "TP %d shard %r" % (tp, d))
        check(d["shape"] == "smollm2-135m" and d["dim"] == "576" and d["n_layers"] == "30" and d["dtype"] == "f32"
              and d["mode"] == "eager" and d["device"] == "test-cpu" and d["bench"] == "tp_layer", "row %r" % d)
        check(int(d["tokens"]) == (1 if step == "decode" else 81), "tokens of %s" % step)
        check((int(d["layers_lo"]), int(d["layers_hi"])) == (1, 3), "layers %r" % d)
        us = [float(d[k]) for k in ("us_lo", "us_hi", "us_per_layer", "us_rest")]
        check(all(math.isfinite(x) for x in us) and us[0] > 0 and us[1] > 0, "times %r" % us)
        close(float(d["us_per_layer"]), (us[1] - us[0]) / 2, "per layer by difference", rel=1e-3)
        close(float(d["us_rest"]), us[0] - float(d["us_per_layer"]), "rest", rel=1e-3)
        qkv = (h + 2 * kv) * 64 * 576
        close(int(d["layer_weight_bytes"]), 4 * (qkv + 576 * h * 64 + 3 * hid * 576 + 2 * 576), "layer bytes")
    check(seen == {(1, "decode"), (1, "verify"), (3, "decode"), (3, "verify")}, "rows %r" % sorted(seen))
    src = os.path.join(tmp, "bench.csv")
    with open(src, "w") as f:
        f.write(r.stdout)
    m = subprocess.run([sys.executable, MODEL, src], capture_output=True, text=True)
    check(m.returncode == 0 and "| smollm2-135m | decode |" in m.stdout, "the model on the bench's CSV: exit %d %s"
          % (m.returncode, m.stderr))
    # TP 2 does not divide 9 query heads.
    r = subprocess.run([bench, "--shape", "smollm2-135m", "--tp", "2", "--backend", "cpu"], capture_output=True,
                       text=True)
    check(r.returncode == 1 and "9" in r.stderr and "2" in r.stderr, "TP 2: exit %d, %r" % (r.returncode, r.stderr))


def script_without_bench(tmp):
    r = subprocess.run(["bash", SCRIPT, "--cpu-check", os.path.join(tmp, "no-build"), os.path.join(tmp, "out")],
                       capture_output=True, text=True)
    check(r.returncode == 1 and "no-build/bin/bench_tp_layer not found" in r.stderr,
          "tp_cost.sh without the bench: exit %d, %r" % (r.returncode, r.stderr))


def main():
    if len(sys.argv) != 2:
        print("usage: tp_cost_test.py BENCH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        model_arithmetic(tmp)
        layer_parallel_arithmetic(tmp)
        bench_rows(sys.argv[1], tmp)
        script_without_bench(tmp)
    print("tp_cost_test: %d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
