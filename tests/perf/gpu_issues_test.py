#!/usr/bin/env python3
"""tests/perf/gpu_issues_test.py BENCH — the plumbing of perf/gpu_issues.sh
and its two benches on the CPU (ctest gpu_issues_plumbing, label cpu).
BENCH is the path of bench_draft_step; its build holds bench_kv_heads and
bench_tp_layer beside it.
- perf/gpu_issues.sh --cpu-check runs both benches on a few layers of
  smollm2-135m and perf/tp_cost.sh --cpu-check, and writes its summary
  (every stage exit 0, the headline lines, overall PASS);
- bench_kv_heads' rows (in the script's benches.csv): well-formed, the KV
  bytes per token, the batch that fits the budget, the bytes each row reads,
  one copy bandwidth behind every floor, the whole step extrapolated from
  the two layer counts as documented;
- bench_draft_step's rows: the steps it names (a group size larger than a
  draft's middle layers skipped), the expected speedups recomputed from
  the step times and the default acceptance, and end to end the target as
  its own draft commits K + 1 tokens per full round where plain decoding
  commits 1;
- without --layers (tiny, 4 layers) the whole step is the measured one;
- bad input: a KV-head count that does not divide the query heads (exit 1,
  naming both), a malformed --accept (exit 2), and the script on a build
  without the benches (exit 1, naming the path).
Python 3, standard library only. The times are the CPU's: only their
relations are checked, never their size.
"""
import csv
import io
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "perf", "gpu_issues.sh")
KV_HEADER = ("bench,shape,path,median_us,floor_us,pct_of_floor,kv_heads,batch,context,layers,kv_bytes_per_token,"
             "bytes_read,batch_in_budget,budget_gib,dtype,mode,device,command")
DRAFT_HEADER = ("bench,shape,path,median_us,tokens,n_layers,draft_layers,layer_parallel,draft_len,prefix,"
                "mean_accepted,speedup,loop,dtype,mode,device,command")
# The defaults of bench_draft_step's --accept (perf/NOTES.md, CPU).
ACCEPT = {"draft sequential": 2.66, "draft lp 2 calibrated": 2.89, "draft lp 4 calibrated": 2.77,
          "draft lp 2 uncalibrated": 2.29, "draft lp 4 uncalibrated": 1.66}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def close(a, b, what, rel=1e-5, abs_tol=1e-9):
    check(math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol), "%s: %r, expected %r" % (what, a, b))


def close_printed(printed, f, args, what, out_dec):
    """printed = f(*values) rounded to out_dec decimals, where each value was itself printed rounded: args holds
    (value, decimals) pairs as read back, and f is monotone in each value over the box of half a unit in its last
    place around it. The bound is the farthest corner of that box from f(*values), plus half a unit of printed."""
    halves = [0.5 * 10 ** -dec for _, dec in args]
    exact = f(*[v for v, _ in args])
    corners = [[]]
    for (v, _), h in zip(args, halves):
        corners = [c + [v + d] for c in corners for d in (-h, h)]
    bound = max(abs(f(*c) - exact) for c in corners) + 0.5 * 10 ** -out_dec + 1e-9
    check(abs(printed - exact) <= bound, "%s: %r, expected %r within %.3g" % (what, printed, exact, bound))


def close_printed_quotient(printed, num, den, what, scale=1.0, num_dec=2, den_dec=2, out_dec=1):
    """printed = scale * num / den, all three printed rounded to their decimals (close_printed)."""
    if abs(den) <= 0.5 * 10 ** -den_dec:
        check(False, "%s: denominator %r too small to check" % (what, den))
        return
    close_printed(printed, lambda n, d: scale * n / d, [(num, num_dec), (den, den_dec)], what, out_dec)


def sections(text):
    """benches.csv: '# command' lines, each followed by one bench's CSV."""
    out, cur = [], None
    for line in text.splitlines():
        if line.startswith("# "):
            cur = [line[2:], []]
            out.append(cur)
        elif cur is not None:
            cur[1].append(line)
    return out


def kv_rows(lines):
    check(lines and lines[0] == KV_HEADER, "bench_kv_heads header %r" % (lines[:1],))
    for rec in csv.reader(io.StringIO("\n".join(lines))):
        check(len(rec) == 18, "a bench_kv_heads row of %d fields: %r" % (len(rec), rec))
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    # --kv-heads 3,1 --batch 2,1 --context 64 --layers 1,2: per (heads, batch) the attention, the step at 2
    # and at 1 layers, the whole step extrapolated to 30.
    check(len(rows) == 16, "%d bench_kv_heads rows, expected 16" % len(rows))
    bw = set()
    by = {}
    for d in rows:
        h, b, ctx = int(d["kv_heads"]), int(d["batch"]), int(d["context"])
        check(d["shape"] == "smollm2-135m" and d["dtype"] == "f32" and d["mode"] == "eager" and ctx == 64
              and float(d["budget_gib"]) == 40, "row %r" % d)
        kv_tok = 2 * 30 * h * 64 * 4
        check(int(d["kv_bytes_per_token"]) == kv_tok,
              "KV bytes per token at %d heads: %s" % (h, d["kv_bytes_per_token"]))
        check(int(d["batch_in_budget"]) == (40 << 30) // (kv_tok * 64), "batch in 40 GiB at %d heads: %s"
              % (h, d["batch_in_budget"]))
        us, fl = float(d["median_us"]), float(d["floor_us"])
        # A measured time is positive; an extrapolated one may not be on a busy CPU (the 2-layer step no slower
        # than the 1-layer one), which the formula check below still covers.
        check(math.isfinite(us) and us != 0 and fl > 0 and (us > 0 or d["bench"] == "kv_step_full"), "times %r" % d)
        # bench_kv_heads prints the times with 2 decimals and the percentage with 1.
        close_printed_quotient(float(d["pct_of_floor"]), fl, us, "pct_of_floor", scale=100)
        bw.add(round(float(d["bytes_read"]) / fl, -1) if fl > 0 else 0)
        if d["bench"] == "kv_attention":
            check(d["path"].startswith("deco_attention:") and d["layers"] == "1", "attention row %r" % d)
            close(float(d["bytes_read"]), b * 64 * 2 * h * 64 * 4 + 2 * b * 9 * 64 * 4, "attention bytes")
        elif d["bench"] == "kv_step":
            check(d["path"] == "forward_device" and d["layers"] in ("1", "2"), "step row %r" % d)
        else:
            check(d["bench"] == "kv_step_full" and d["path"] == "extrapolated 1,2" and d["layers"] == "30",
                  "full-step row %r" % d)
        by[(h, b, d["bench"], int(d["layers"]))] = d
    # One bandwidth behind every floor (bytes / floor, to the printed precision).
    vals = sorted(float(d["bytes_read"]) / float(d["floor_us"]) for d in rows if float(d["bytes_read"]) > 1e6)
    check(vals and vals[-1] / vals[0] < 1.001, "floors from one bandwidth: %r" % ((vals[:1] + vals[-1:]),))
    for h in (3, 1):
        for b in (2, 1):
            try:
                t1 = float(by[(h, b, "kv_step", 1)]["median_us"])
                t2 = float(by[(h, b, "kv_step", 2)]["median_us"])
                full = float(by[(h, b, "kv_step_full", 30)]["median_us"])
            except KeyError:
                check(False, "rows of %d heads, B = %d missing" % (h, b))
                continue
            close(full, (t1 - (t2 - t1)) + 30 * (t2 - t1), "whole step of %d heads, B = %d" % (h, b),
                  rel=1e-3, abs_tol=0.5)
            # The step reads the weights and every layer's K/V: the 2-layer floor exceeds the 1-layer one.
            check(float(by[(h, b, "kv_step", 2)]["bytes_read"]) > float(by[(h, b, "kv_step", 1)]["bytes_read"]),
                  "step bytes grow with the layers")


def draft_rows(lines):
    check(lines and lines[0] == DRAFT_HEADER, "bench_draft_step header %r" % (lines[:1],))
    for rec in csv.reader(io.StringIO("\n".join(lines))):
        check(len(rec) == 17, "a bench_draft_step row of %d fields: %r" % (len(rec), rec))
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    for d in rows:
        check(d["shape"] == "smollm2-135m" and d["n_layers"] == "6" and d["draft_len"] == "3" and d["prefix"] == "32"
              and d["dtype"] == "f32" and d["mode"] == "eager", "row %r" % d)
        check(float(d["median_us"]) > 0, "time of %r" % d)
    steps = {(d["path"], int(d["draft_layers"])): d for d in rows if d["bench"] == "draft_step"}
    want = {("decode", 0), ("verify", 0), ("draft sequential", 4), ("draft lp 2 calibrated", 4),
            ("draft lp 2 uncalibrated", 4), ("draft sequential", 6), ("draft lp 2 calibrated", 6),
            ("draft lp 2 uncalibrated", 6), ("draft lp 4 calibrated", 6), ("draft lp 4 uncalibrated", 6)}
    check(set(steps) == want, "draft steps %r" % sorted(steps))
    if set(steps) != want:
        return
    check(steps[("decode", 0)]["tokens"] == "1" and steps[("verify", 0)]["tokens"] == "4", "decode/verify tokens")
    t_decode, t_verify = float(steps[("decode", 0)]["median_us"]), float(steps[("verify", 0)]["median_us"])
    expected = [d for d in rows if d["bench"] == "draft_expected"]
    check(len(expected) == 9, "%d expected rows, expected 9 (8 drafts and the forced one)" % len(expected))
    for d in expected:
        D = int(d["draft_layers"])
        a = float(d["mean_accepted"])
        base = d["path"].replace(", forced", "")
        step = steps.get((base, D))
        if step is None:
            check(False, "expected row without its step: %r" % d)
            continue
        close(float(d["median_us"]), float(step["median_us"]) + t_verify, "round of %s, %d layers" % (base, D),
              rel=1e-4, abs_tol=0.02)
        if d["path"].endswith("forced"):
            check(D == 6 and a == 4.0 and d["loop"].startswith("forced"), "forced row %r" % d)
        else:
            close(a, ACCEPT[base], "acceptance of %s" % base)
            check(d["loop"].startswith("NOTES CPU"), "acceptance label %r" % d["loop"])
        # bench_draft_step prints times with 2 decimals, acceptance and speedup with 3.
        close_printed(float(d["speedup"]), lambda a_, t_, r_: a_ * t_ / r_,
                      [(a, 3), (t_decode, 2), (float(d["median_us"]), 2)], "speedup of %s, %d layers" % (d["path"], D),
                      out_dec=3)
        lp = int(d["layer_parallel"])
        check(lp == (1 if "sequential" in base else int(base.split()[2])), "layer_parallel of %r" % d)
    e2e = {(d["path"], d["loop"]): d for d in rows if d["bench"] == "draft_e2e"}
    check(("plain", "device") in e2e and ("plain", "host") in e2e and len(e2e) == 3, "end-to-end rows %r" % sorted(e2e))
    self_rows = [d for (p, _), d in e2e.items() if p == "self-draft"]
    check(len(self_rows) == 1 and self_rows[0]["loop"] in ("host", "device"), "self-draft row %r" % self_rows)
    if len(self_rows) != 1 or ("plain", "device") not in e2e:
        return
    plain, spec = e2e[("plain", "device")], self_rows[0]
    tokens = int(plain["tokens"])
    check(tokens == int(spec["tokens"]) and tokens >= 20, "tokens %s, %s" % (plain["tokens"], spec["tokens"]))
    check(float(plain["mean_accepted"]) == 1.0 and float(plain["speedup"]) == 1.0, "plain row %r" % plain)
    # Forced acceptance: every full round commits K + 1 = 4 (the last may be cut short, the first token comes
    # from the prefill).
    check(float(spec["mean_accepted"]) >= tokens / (math.ceil(tokens / 4) + 1), "self-draft acceptance %s over %d"
          % (spec["mean_accepted"], tokens))
    close_printed_quotient(float(spec["speedup"]), float(plain["median_us"]), float(spec["median_us"]),
                           "end-to-end speedup", out_dec=3)


def script_run(build, tmp):
    out = os.path.join(tmp, "out")
    env = dict(os.environ, DECO_BUILD_DIR=build, OMP_NUM_THREADS="1", DECO_GPU_BUDGET_S="300")
    r = subprocess.run(["bash", SCRIPT, "--cpu-check", out], capture_output=True, text=True, env=env)
    check(r.returncode == 0, "gpu_issues.sh --cpu-check: exit %d: %s %s" % (r.returncode, r.stdout[-2000:],
                                                                          r.stderr[-2000:]))
    summary = open(os.path.join(out, "summary.txt")).read() if os.path.exists(os.path.join(out, "summary.txt")) else ""
    for needle in ("(CPU plumbing check: not GPU figures)", "bench bench_kv_heads --backend cpu",
                   "bench bench_draft_step --backend cpu", "tp_cost: exit 0", "kv: kv_heads", "draft: decode ",
                   "draft: end to end", "overall: PASS"):
        check(needle in summary, "summary lacks %r" % needle)
    check(sum(1 for l in summary.splitlines() if l.startswith("bench ") and ": exit 0 (" in l) == 2,
          "two benches exit 0 in the summary")
    check(sum(1 for l in summary.splitlines() if l.startswith("kv: ") and "%" in l) == 5, "kv headline lines")
    check(os.path.exists(os.path.join(out, "tp_cost", "tp_cost.md")), "tp_cost/tp_cost.md written")
    csv_path = os.path.join(out, "benches.csv")
    if not os.path.exists(csv_path):
        check(False, "benches.csv missing")
        return
    secs = sections(open(csv_path).read())
    check(len(secs) == 2 and secs[0][0].startswith("bench_kv_heads") and secs[1][0].startswith("bench_draft_step"),
          "benches.csv sections %r" % [s[0] for s in secs])
    if len(secs) == 2:
        kv_rows(secs[0][1])
        draft_rows(secs[1][1])


def kv_measured(build):
    """Without --layers the whole step is measured (the shape's own layer count): tiny, 4 layers."""
    kv = os.path.join(build, "bin", "bench_kv_heads")
    r = subprocess.run([kv, "--backend", "cpu", "--shape", "tiny", "--kv-heads", "4,1", "--batch", "3",
                        "--context", "40", "--reps", "1", "--threads", "1"], capture_output=True, text=True)
    check(r.returncode == 0, "bench_kv_heads on tiny: exit %d: %s" % (r.returncode, r.stderr[-2000:]))
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    check(len(rows) == 6, "%d rows on tiny, expected 6" % len(rows))
    for h in (4, 1):
        got = {d["bench"]: d for d in rows if d["kv_heads"] == str(h)}
        check(set(got) == {"kv_attention", "kv_step", "kv_step_full"}, "tiny rows at %d heads: %r" % (h, sorted(got)))
        if len(got) == 3:
            step, full = got["kv_step"], got["kv_step_full"]
            check(full["path"] == "measured" and full["layers"] == "4" and step["layers"] == "4"
                  and full["median_us"] == step["median_us"] and full["bytes_read"] == step["bytes_read"],
                  "measured whole step %r %r" % (step, full))
            check(int(full["kv_bytes_per_token"]) == 2 * 4 * h * 64 * 4, "tiny KV bytes per token at %d heads" % h)


def bad_input(build, tmp):
    kv = os.path.join(build, "bin", "bench_kv_heads")
    r = subprocess.run([kv, "--backend", "cpu", "--shape", "smollm2-135m", "--kv-heads", "3,2"], capture_output=True,
                       text=True)
    check(r.returncode == 1 and "2 KV heads" in r.stderr and "9 query heads" in r.stderr,
          "2 KV heads of 9: exit %d, %r" % (r.returncode, r.stderr))
    ds = os.path.join(build, "bin", "bench_draft_step")
    r = subprocess.run([ds, "--backend", "cpu", "--accept", "seq=0.5"], capture_output=True, text=True)
    check(r.returncode == 2 and "--accept" in r.stderr, "--accept seq=0.5: exit %d, %r" % (r.returncode, r.stderr))
    env = dict(os.environ, DECO_BUILD_DIR=os.path.join(tmp, "no-build"))
    r = subprocess.run(["bash", SCRIPT, "--cpu-check", os.path.join(tmp, "out2")], capture_output=True, text=True,
                       env=env)
    check(r.returncode == 1 and "no-build/bin/bench_kv_heads not found" in r.stdout,
          "gpu_issues.sh without the benches: exit %d, %r" % (r.returncode, r.stdout + r.stderr))


def main():
    if len(sys.argv) != 2:
        print("usage: gpu_issues_test.py BENCH_DRAFT_STEP", file=sys.stderr)
        return 2
    build = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        bad_input(build, tmp)
        kv_measured(build)
        script_run(build, tmp)
    print("gpu_issues_test: %d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
