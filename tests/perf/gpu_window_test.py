#!/usr/bin/env python3
"""tests/perf/gpu_window_test.py DECO — scripts/gpu-window.sh on the CPU
(ctest gpu_window, label cpu). DECO is the path of a CPU build's deco
program. The windows run over a small copy of its build (deco and
libdeco.so, so that a packed kit's rt/ left in the build does not count),
which has no GPU suites, and this machine has no GPU, so every stage runs
and fails, which is what is checked here, with the layout:
- the four stages run in order (run.sh, gpu_issues, gpu_step, gpu_kernels),
  each with its budget, and the window exits 1;
- the build's environment is set up once, by the window (one libraries
  line before the stages), and every stage finds it set up;
- OUT holds exactly summary.txt and results.tgz; the archive holds each
  stage's folder with its summary.txt, and summary.txt each stage's summary;
- with a short window the later stages are reported as not started;
- with an empty build folder and a kit (scripts/gpu-kit.sh pack of a small
  build: deco and libdeco.so), the kit is unpacked there first, the window
  looks for its libraries (the kit's branch of scripts/gpu-env.sh) and the
  stages run from it without doing so again; with a broken kit the window stops at once (exit 1);
- a second call with the same kit does not unpack it again, names the
  kit's commit, and does not rerun a stage recorded as passed beside the
  build (gpu-window-done.txt); another kit is unpacked over the build and
  the record goes with the old one; no build and no kit stop the window;
- a SECONDS that is not a number is a usage error (exit 2);
- perf/gpu_lib.sh's gpu_sanitize over a placeholder compute-sanitizer: an
  error found fails the case even when its time ran out; a case out of time
  with nothing found is no verdict, recorded and not run again when it had
  its full 90 s (a budget that cut it short leaves it to run again); a
  clean case is recorded and not run again;
- tests/gpu/run.sh alone, its time budget: no GPU program can pass here, so
  its build (DECO_BUILD_DIR) is a temporary folder of placeholder programs
  that exit 0 (one GPU suite taking 5 s, the benches run.sh names; the mini
  SmolLM2 it requires an empty file in a temporary DECO_MODELS_DIR). A 14 s
  budget runs out during the suite: the suite passes, every bench and CLI
  run after it reads SKIPPED (time budget), and the run passes (exit 0): a
  bench, CLI or sanitizer run skipped for time is reported, not failed. A
  5 s budget skips the suite itself, which fails the run (exit 1). In a
  window (DECO_GPU_WINDOW=1, DECO_GPU_DONE) it runs no bench, records the
  suite that passed, and a second run does not run it again.
"""
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WINDOW = os.path.join(ROOT, "scripts", "gpu-window.sh")
KIT = os.path.join(ROOT, "scripts", "gpu-kit.sh")
RUN = os.path.join(ROOT, "tests", "gpu", "run.sh")
BENCHES = ["bench_spec", "bench_forward", "bench_recycle", "bench_ops", "bench_tree_attention", "bench_accept"]
STAGES = [("all", "tests/gpu/run.sh", 300), ("issues", "perf/gpu_issues.sh", 150),
          ("step", "perf/gpu_step.sh", 150), ("kernels", "perf/gpu_kernels.sh", 150)]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def window(out, seconds, build, kit=None, path_first=None):
    env = dict(os.environ, DECO_BUILD_DIR=build)
    if path_first is not None:
        env["PATH"] = path_first + os.pathsep + env.get("PATH", "")
    env.pop("DECO_GPU_BUDGET_S", None)
    env.pop("DECO_GPU_ENV_BUILD", None)  # an environment set up outside would be taken as the window's
    if kit is not None:
        env["DECO_GPU_KIT"] = kit
    args = ["bash", WINDOW, out] + ([str(seconds)] if seconds is not None else [])
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


SET_UP = "libraries: as set up by the calling script"


def env_once(what, summary):
    """The window's own libraries line before the stage lines, and every stage's summary saying that it found
    the environment set up. Returns the window's line."""
    head = summary.split("\n===== ")[0]
    lines = re.findall(r"^libraries: .*$", head, re.M)
    check(len(lines) == 1 and lines[0] != SET_UP and "stage " in head and head.index(lines[0]) < head.index("stage "),
          f"{what}: the window's libraries lines {lines}")
    for name, _, _ in STAGES:
        if f"===== {name}\n" not in summary:
            check(False, f"{what}: no summary of stage {name}")
            continue
        part = summary.split(f"===== {name}\n", 1)[1].split("\n===== ")[0]
        check(re.findall(r"^libraries: .*$", part, re.M) == [SET_UP],
              f"{what}: stage {name} set up its own environment: {part[:400]!r}")
    return lines[0] if lines else ""


def program(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)


def run_sh(tmp, name, budget, **extra):
    """tests/gpu/run.sh over the placeholder build in tmp with a budget: its result and summary.txt."""
    out = os.path.join(tmp, name)
    env = dict(os.environ, DECO_BUILD_DIR=os.path.join(tmp, "fake"), DECO_MODELS_DIR=os.path.join(tmp, "models"),
               DECO_GPU_BUDGET_S=str(budget), **extra)
    env.pop("DECO_GPU_ENV_BUILD", None)
    for k in ("DECO_GPU_DONE", "DECO_GPU_WINDOW"):
        if k not in extra:
            env.pop(k, None)
    r = subprocess.run(["bash", RUN, out], env=env, capture_output=True, text=True, timeout=120)
    return r, open(os.path.join(out, "summary.txt")).read()


def run_budget(tmp):
    os.makedirs(os.path.join(tmp, "fake", "bin"))
    os.makedirs(os.path.join(tmp, "models"))
    open(os.path.join(tmp, "models", "SmolLM2-135M-mini.gguf"), "w").close()
    program(os.path.join(tmp, "fake", "bin", "gpu_test_wait"), "sleep 5\nexit 0")
    for b in BENCHES:
        program(os.path.join(tmp, "fake", "bin", b), "exit 0")

    # Time runs out during the suite: what comes after is reported only.
    r, summary = run_sh(tmp, "late", 14)
    check(re.search(r"^test  gpu_test_wait: PASS ", summary, re.M) is not None, f"run.sh late: the suite\n{summary}")
    benches = re.findall(r"^bench (.*): SKIPPED \(time budget\)$", summary, re.M)
    check(len(benches) == 10, f"run.sh late: {len(benches)} benches skipped for time, expected 10\n{summary}")
    cli = re.findall(r"^cli   (.*): SKIPPED \(time budget\)$", summary, re.M)
    check(len(cli) == 11, f"run.sh late: {len(cli)} CLI runs skipped for time, expected 11\n{summary}")
    check(re.search(r"^overall: PASS in \d+ s$", summary, re.M) is not None and r.returncode == 0,
          f"run.sh late: exit {r.returncode}, expected 0 (skipped for time is reported, not failed)\n{summary}")

    # No time for the suite: a suite skipped for time fails the run.
    r, summary = run_sh(tmp, "none", 5)
    check("test  gpu_test_wait: SKIPPED (time budget)\n" in summary, f"run.sh none: the suite\n{summary}")
    check(re.search(r"^overall: FAIL in \d+ s$", summary, re.M) is not None and r.returncode == 1,
          f"run.sh none: exit {r.returncode}, expected 1\n{summary}")

    # In a window: no benches (its later stages time them), and a suite that
    # passed earlier in the window (DECO_GPU_DONE) is not run again.
    done = os.path.join(tmp, "done.txt")
    open(done, "w").close()
    r, summary = run_sh(tmp, "window-1", 30, DECO_GPU_WINDOW="1", DECO_GPU_DONE=done)
    check(re.search(r"^test  gpu_test_wait: PASS ", summary, re.M) is not None and "\nbench " not in summary
          and "benches: left to the window's step and kernels stages\n" in summary,
          f"run.sh in a window: suite and benches\n{summary}")
    check(open(done).read() == "suite gpu_test_wait\n", f"run.sh in a window: recorded {open(done).read()!r}")
    r, summary = run_sh(tmp, "window-2", 5, DECO_GPU_WINDOW="1", DECO_GPU_DONE=done)
    check("test  gpu_test_wait: PASS earlier in this window\n" in summary and r.returncode == 0,
          f"run.sh in a window, again: exit {r.returncode}\n{summary}")


def sanitize_verdicts(tmp):
    """perf/gpu_lib.sh's gpu_sanitize over a placeholder compute-sanitizer: a finding fails whatever ended the run;
    a run out of time with nothing found (the sanitizer's own "process didn't terminate" line is no finding) is no
    verdict, recorded and not run again when it had its full 90 s, run again when a budget cut it short; a clean
    run is recorded and not run again."""
    fake = os.path.join(tmp, "fake-sanitizer")
    os.makedirs(os.path.join(fake, "bin"))
    program(os.path.join(fake, "bin", "gpu_test_x"), "exit 0")
    program(os.path.join(fake, "compute-sanitizer"), 'cat "$FAKE_LOG"; exit "$FAKE_RC"')
    done = os.path.join(tmp, "sanitize-done.txt")
    open(done, "w").close()
    lib = os.path.join(ROOT, "perf", "gpu_lib.sh")
    # skips_fail=0 as in run.sh: a run with no verdict is reported, not failed.
    script = ('out=$1; budget=$3; skips_fail=0; . "$2"; t_start=$(date +%s); mkdir -p "$out"; : >"$out/summary.txt"; '
              'gpu_sanitize memcheck gpu_test_x "$4"; echo "status=$status"')
    late = "========= Error: process didn't terminate successfully\n"
    cases = [("found", "*/a", 120, "========= Invalid __global__ read of size 4\n", 124, r"FAIL \(124\)", 1),
             ("late", "*/b", 120, late, 124, r"TIMEOUT after 90 s \(nothing found so far, no verdict\)", 0),
             ("late again", "*/b", 120, late, 124, r"out of time earlier in this window, not run again", 0),
             ("cut short", "*/c", 30, late, 124, r"TIMEOUT after \d+ s \(nothing found so far, no verdict\)", 0),
             ("cut short, again", "*/c", 120, late, 124, r"TIMEOUT after 90 s \(nothing found so far, no verdict\)", 0),
             ("clean", "*/d", 120, "========= ERROR SUMMARY: 0 errors\n", 0, r"clean", 0),
             ("clean again", "*/d", 120, "", 1, r"clean earlier in this window", 0)]
    for what, flt, budget, log, rc, want, st in cases:
        with open(os.path.join(tmp, "fake-log"), "w") as f:
            f.write(log)
        env = dict(os.environ, DECO_BUILD_DIR=fake, PATH=fake + os.pathsep + os.environ.get("PATH", ""),
                   FAKE_LOG=os.path.join(tmp, "fake-log"), FAKE_RC=str(rc), DECO_GPU_DONE=done)
        env.pop("DECO_GPU_ENV_BUILD", None)
        r = subprocess.run(["bash", "-c", script, "bash", os.path.join(tmp, "sanitize-out"), lib, str(budget), flt],
                           env=env, capture_output=True, text=True, timeout=60)
        line = "memcheck gpu_test_x " + re.escape(flt) + ": " + want
        check(re.search("^" + line + "$", r.stdout, re.M) is not None and f"status={st}" in r.stdout,
              f"gpu_sanitize, {what}: {r.stdout!r} {r.stderr!r}")
    check(open(done).read().splitlines() == ["timeout memcheck gpu_test_x */b", "timeout memcheck gpu_test_x */c",
                                             "memcheck gpu_test_x */d"],
          f"gpu_sanitize: recorded {open(done).read()!r}")


def stage_lines(summary):
    return re.findall(r"^stage (\w+)(?: \((\S+)\): exit (\d+) in \d+ s of a (\d+) s budget|: NOT STARTED)",
                      summary, re.M)


def earlier_passes(summary):
    return re.findall(r"^stage (\w+) \(\S+\): PASS in an earlier call on this build, not run again$", summary, re.M)


def main():
    deco = os.path.abspath(sys.argv[1])
    build = os.path.dirname(os.path.dirname(deco))
    tmp = tempfile.mkdtemp(prefix="deco-window-test.")
    try:
        # A small build of deco and libdeco.so alone. The build folder itself
        # may hold a packed kit's rt/ (scripts/gpu-kit.sh pack leaves it
        # there), whose library search would change the libraries line and
        # take seconds of the short window's budget.
        small = os.path.join(tmp, "small")
        os.makedirs(os.path.join(small, "bin"))
        os.makedirs(os.path.join(small, "lib"))
        shutil.copy2(deco, os.path.join(small, "bin", "deco"))
        for f in os.listdir(os.path.join(build, "lib")):
            if f.startswith("libdeco.so"):
                shutil.copy2(os.path.join(build, "lib", f), os.path.join(small, "lib", f), follow_symlinks=False)

        # The whole window over the small CPU build: every stage runs and fails.
        out = os.path.join(tmp, "out")
        r = window(out, 400, small)
        check(r.returncode == 1, f"full window: exit {r.returncode}, expected 1\n{r.stdout}{r.stderr}")
        check(sorted(os.listdir(out)) == ["results.tgz", "summary.txt"],
              f"full window: OUT holds {sorted(os.listdir(out))}")
        summary = open(os.path.join(out, "summary.txt")).read()
        lines = stage_lines(summary)
        check([(n, s, b) for n, s, _, b in lines] == [(n, s, str(b)) for n, s, b in STAGES],
              f"full window: stage lines {lines}")
        check(all(rc == "1" for _, _, rc, _ in lines), f"full window: a stage passed without a GPU: {lines}")
        check(re.search(r"^window: FAIL in \d+ s; results.tgz \d+ KiB$", summary, re.M) is not None,
              "full window: no verdict line")
        for name, _, _ in STAGES:
            check(f"===== {name}\n" in summary, f"full window: {name}'s summary is not in summary.txt")
        check(env_once("full window", summary) == "libraries: the host's own",
              "full window: a build without rt/ uses the host's libraries")
        with tarfile.open(os.path.join(out, "results.tgz")) as tar:
            members = set(m.name.lstrip("./") for m in tar.getmembers())
        for name, _, _ in STAGES:
            check(f"{name}/summary.txt" in members, f"full window: results.tgz lacks {name}/summary.txt")
            check(f"{name}.console" in members, f"full window: results.tgz lacks {name}.console")

        # A short window: the first stage gets what is left less 15 s, the
        # others are not started (under 60 s left). The window counts whole
        # seconds of the clock, so its set-up before the first stage reads
        # 0 to 3 s on a busy machine (78 - 15 - 3 = 60: the stage still
        # starts). The small build fails run.sh at once; an nvidia-smi that
        # takes 2 s (run.sh calls it twice for its device lines) makes the
        # first stage last at least 4 s, so at most 78 - 15 - 4 = 59 s are
        # left for the second.
        slow = os.path.join(tmp, "slow-smi")
        os.makedirs(slow)
        program(os.path.join(slow, "nvidia-smi"), "sleep 2\nexit 1")
        out = os.path.join(tmp, "short")
        r = window(out, 78, small, path_first=slow)
        lines = stage_lines(open(os.path.join(out, "summary.txt")).read())
        check(len(lines) == 4 and lines[0][:2] == ("all", "tests/gpu/run.sh") and lines[0][3] in ("60", "61", "62", "63"),
              f"short window: first stage {lines[:1]}")
        check([n for n, s, _, _ in lines if not s] == ["issues", "step", "kernels"],
              f"short window: not started {lines}")
        check(r.returncode == 1, f"short window: exit {r.returncode}")

        # A kit unpacked into an empty build folder first.
        kit = os.path.join(tmp, "kit")
        p = subprocess.run(["bash", KIT, "pack", small, kit], capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, f"pack of the small build: exit {p.returncode}\n{p.stderr}")
        empty = os.path.join(tmp, "unpacked")
        os.makedirs(empty)
        out = os.path.join(tmp, "kit-out")
        r = window(out, 400, empty, kit)
        summary = open(os.path.join(out, "summary.txt")).read()
        check(summary.startswith(f"kit: {kit} unpacked into {empty}\n"), f"kit window: summary starts {summary[:200]!r}")
        check(os.access(os.path.join(empty, "bin", "deco"), os.X_OK), "kit window: deco not unpacked")
        check(len(stage_lines(summary)) == 4, "kit window: the stages did not run")
        check(env_once("kit window", summary).startswith("libraries: the host's own; from the kit:"),
              "kit window: the kit's libraries were not looked for")
        check(r.returncode == 1, f"kit window: exit {r.returncode}")
        manifest = open(os.path.join(empty, "kit-manifest.txt")).read().splitlines()
        check(f"build: from a kit: {manifest[0]}; {manifest[1]}\n" in summary, "kit window: no build line")

        # A second call with the same kit: no unpack; what passed before is
        # not run again (a stage recorded as passed, as a GPU would).
        done = os.path.join(empty, "gpu-window-done.txt")
        check(os.path.isfile(done), "kit window: no record of what passed beside the build")
        with open(done, "a") as f:
            f.write("stage issues\n")
        out = os.path.join(tmp, "kit-again")
        r = window(out, 400, empty, kit)
        summary = open(os.path.join(out, "summary.txt")).read()
        check(not summary.startswith("kit: "), f"kit again: unpacked again {summary[:200]!r}")
        check(earlier_passes(summary) == ["issues"] and [n for n, *_ in stage_lines(summary)] == ["all", "step", "kernels"],
              f"kit again: stages {stage_lines(summary)} passed before {earlier_passes(summary)}")
        check(r.returncode == 1, f"kit again: exit {r.returncode}")

        # Another kit (packed again): unpacked over the build, and the record
        # of what passed on the old one goes with it.
        time.sleep(1)  # the manifest's packing time is to the second
        p = subprocess.run(["bash", KIT, "pack", small, kit], capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, f"second pack of the small build: exit {p.returncode}\n{p.stderr}")
        out = os.path.join(tmp, "kit-new")
        r = window(out, 400, empty, kit)
        summary = open(os.path.join(out, "summary.txt")).read()
        check(summary.startswith(f"kit: {kit} unpacked into {empty}\n") and not earlier_passes(summary)
              and len(stage_lines(summary)) == 4, f"new kit: summary {summary[:400]!r}")

        # No build and no kit: the window stops before any stage.
        out = os.path.join(tmp, "nothing-out")
        r = window(out, 400, os.path.join(tmp, "nothing"), os.path.join(tmp, "no-kit"))
        summary = open(os.path.join(out, "summary.txt")).read()
        check(r.returncode == 1 and summary.startswith("FAIL: ") and "holds no kit" in summary
              and not stage_lines(summary), f"no build, no kit: exit {r.returncode}, summary {summary[:300]!r}")

        # A broken kit: the window stops before any stage.
        broken = os.path.join(tmp, "broken")
        os.makedirs(broken)
        open(os.path.join(broken, "manifest.txt"), "w").write("commit: none\n")
        out = os.path.join(tmp, "broken-out")
        r = window(out, 400, os.path.join(tmp, "nothing"), broken)
        summary = open(os.path.join(out, "summary.txt")).read()
        check(r.returncode == 1 and summary.startswith("FAIL: unpacking") and not stage_lines(summary),
              f"broken kit: exit {r.returncode}, summary {summary[:300]!r}")

        r = window(os.path.join(tmp, "usage"), "soon", small)
        check(r.returncode == 2 and "SECONDS" in r.stderr, f"bad SECONDS: exit {r.returncode} {r.stderr!r}")

        run_budget(tmp)
        sanitize_verdicts(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    print(f"gpu_window: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
