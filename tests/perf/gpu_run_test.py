#!/usr/bin/env python3
"""tests/perf/gpu_run_test.py — tests/gpu/run.sh's time budget on the CPU
(ctest gpu_run_budget, label cpu). No GPU program can pass here, so the
build run.sh is pointed at (DECO_BUILD_DIR) is a temporary folder of
placeholder programs that exit 0: one GPU suite that takes 5 s and the
benches run.sh names. What is checked is run.sh's own bookkeeping:
- a budget that runs out during the suite (14 s): the suite passes, every
  bench and every CLI run after it is reported as SKIPPED (time budget),
  and the run passes (exit 0, "overall: PASS"): a bench, CLI or sanitizer
  run skipped for time is reported, not failed;
- a budget too short for the suite (5 s): the suite is SKIPPED and the run
  fails (exit 1, "overall: FAIL").
The repository's data/ is read as it is; the mini SmolLM2 run.sh requires
is an empty file in a temporary DECO_MODELS_DIR (nothing reads it here).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "tests", "gpu", "run.sh")
BENCHES = ["bench_spec", "bench_forward", "bench_recycle", "bench_ops", "bench_tree_attention", "bench_accept"]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def program(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)


def run(tmp, name, budget):
    out = os.path.join(tmp, name)
    env = dict(os.environ, DECO_BUILD_DIR=os.path.join(tmp, "build"), DECO_MODELS_DIR=os.path.join(tmp, "models"),
               DECO_GPU_BUDGET_S=str(budget))
    env.pop("DECO_GPU_ENV_BUILD", None)
    r = subprocess.run(["bash", RUN, out], env=env, capture_output=True, text=True, timeout=120)
    return r, open(os.path.join(out, "summary.txt")).read()


def main():
    tmp = tempfile.mkdtemp(prefix="deco-run-test.")
    try:
        os.makedirs(os.path.join(tmp, "build", "bin"))
        os.makedirs(os.path.join(tmp, "models"))
        open(os.path.join(tmp, "models", "SmolLM2-135M-mini.gguf"), "w").close()
        program(os.path.join(tmp, "build", "bin", "gpu_test_wait"), "sleep 5\nexit 0")
        for b in BENCHES:
            program(os.path.join(tmp, "build", "bin", b), "exit 0")

        # Time runs out during the suite: what comes after is reported only.
        r, summary = run(tmp, "late", 14)
        check(re.search(r"^test  gpu_test_wait: PASS ", summary, re.M) is not None, f"late: the suite\n{summary}")
        benches = re.findall(r"^bench (.*): SKIPPED \(time budget\)$", summary, re.M)
        check(len(benches) == 10, f"late: {len(benches)} benches skipped for time, expected 10\n{summary}")
        cli = re.findall(r"^cli   (.*): SKIPPED \(time budget\)$", summary, re.M)
        check(len(cli) == 11, f"late: {len(cli)} CLI runs skipped for time, expected 11\n{summary}")
        check(re.search(r"^overall: PASS in \d+ s$", summary, re.M) is not None and r.returncode == 0,
              f"late: exit {r.returncode}, expected 0 (skipped for time is reported, not failed)\n{summary}")

        # No time for the suite: a suite skipped for time fails the run.
        r, summary = run(tmp, "none", 5)
        check("test  gpu_test_wait: SKIPPED (time budget)\n" in summary, f"none: the suite\n{summary}")
        check(re.search(r"^overall: FAIL in \d+ s$", summary, re.M) is not None and r.returncode == 1,
              f"none: exit {r.returncode}, expected 1\n{summary}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    print(f"gpu_run_budget: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
