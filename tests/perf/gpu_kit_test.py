#!/usr/bin/env python3
"""tests/perf/gpu_kit_test.py DECO — scripts/gpu-kit.sh and scripts/gpu-env.sh
on the CPU (ctest gpu_kit, label cpu). DECO is the path of the deco program;
its build's lib/ holds libdeco.so.

A small build is made in a temporary folder: DECO, the build's libdeco.so*,
and a probe program linked against a probe library that only a temporary
folder holds (a library this machine has but a GPU host would lack).
- pack without that folder on LD_LIBRARY_PATH fails (exit 1) naming the
  library; with it, pack writes the archive and a manifest whose rt/ holds
  the probe library and none of the C library's, CUDA's or the build's own;
- unpack into another folder, the probe folder removed: deco_gpu_env
  supplies the probe library from the kit and nothing else (this machine has
  the rest), the probe runs, and the unpacked deco prints the ids the
  original prints;
- deco_gpu_commit: DECO_COMMIT first, else git, else the kit's manifest;
- unpack without an archive and a bad command line fail (exit 1, exit 2).
Needs bash, xz, ldd and a C compiler (cc).
"""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KIT = os.path.join(ROOT, "scripts", "gpu-kit.sh")
ENV = os.path.join(ROOT, "scripts", "gpu-env.sh")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def run(args, env=None, cwd=None):
    e = dict(os.environ)
    e.pop("LD_LIBRARY_PATH", None)
    if env:
        e.update(env)
    return subprocess.run(args, env=e, cwd=cwd, capture_output=True, text=True)


def main():
    if len(sys.argv) != 2:
        print("usage: gpu_kit_test.py DECO", file=sys.stderr)
        return 2
    deco = os.path.abspath(sys.argv[1])
    libdir = os.path.join(os.path.dirname(os.path.dirname(deco)), "lib")
    tmp = tempfile.mkdtemp(prefix="deco-gpu-kit-")
    try:
        build = os.path.join(tmp, "build")
        extra = os.path.join(tmp, "extra")
        for d in (os.path.join(build, "bin"), os.path.join(build, "lib"), extra):
            os.makedirs(d)
        shutil.copy2(deco, os.path.join(build, "bin", "deco"))
        libs = [f for f in os.listdir(libdir) if f.startswith("libdeco.so")]
        check(libs, "no libdeco.so* in " + libdir)
        for f in libs:
            shutil.copy2(os.path.join(libdir, f), os.path.join(build, "lib", f), follow_symlinks=False)
        with open(os.path.join(tmp, "probe_lib.c"), "w") as f:
            f.write("int deco_kit_probe(void) { return 42; }\n")
        with open(os.path.join(tmp, "probe.c"), "w") as f:
            f.write('#include <stdio.h>\nint deco_kit_probe(void);\n'
                    'int main(void) { printf("probe %d\\n", deco_kit_probe()); return 0; }\n')
        r = run(["cc", "-shared", "-fPIC", "-Wl,-soname,libdecokitprobe.so.1", "-o",
                 os.path.join(extra, "libdecokitprobe.so.1"), os.path.join(tmp, "probe_lib.c")])
        check(r.returncode == 0, "cc (probe library): " + r.stderr)
        os.symlink("libdecokitprobe.so.1", os.path.join(extra, "libdecokitprobe.so"))
        r = run(["cc", "-o", os.path.join(build, "bin", "kit_probe"), os.path.join(tmp, "probe.c"),
                 "-L" + extra, "-ldecokitprobe"])
        check(r.returncode == 0, "cc (probe): " + r.stderr)
        if failures:
            return 1

        kit = os.path.join(tmp, "kit")
        r = run(["bash", KIT, "pack", build, kit])
        check(r.returncode == 1 and "libdecokitprobe.so.1" in r.stderr,
              "pack with a library this machine cannot find: exit %d, %r" % (r.returncode, r.stderr))
        r = run(["bash", KIT, "pack", build, kit], env={"LD_LIBRARY_PATH": extra})
        check(r.returncode == 0, "pack: exit %d, %s" % (r.returncode, r.stderr))
        check(os.path.isfile(os.path.join(kit, "build.tar.xz")), "pack wrote no build.tar.xz")
        rt = sorted(os.listdir(os.path.join(build, "rt")))
        check("libdecokitprobe.so.1" in rt, "rt/ lacks the probe library: %s" % rt)
        for bad in ("libc.so.6", "libm.so.6", "libdeco.so.0", "libcudart", "libcublas", "libnccl"):
            check(not any(f.startswith(bad) for f in rt), "rt/ holds %s: %s" % (bad, rt))
        with open(os.path.join(kit, "manifest.txt")) as f:
            manifest = f.read()
        for key in ("commit: ", "uncommitted changes: ", "libraries in rt/: ", "packed ", "tree + kit + mini model: "):
            check(key in manifest, "manifest lacks %r:\n%s" % (key, manifest))
        commit = [ln.split(": ", 1)[1] for ln in manifest.splitlines() if ln.startswith("commit: ")]

        shutil.rmtree(extra)
        host = os.path.join(tmp, "host", "build")
        r = run(["bash", KIT, "unpack", kit, host])
        check(r.returncode == 0, "unpack: exit %d, %s" % (r.returncode, r.stderr))
        for p in ("bin/deco", "bin/kit_probe", "rt/libdecokitprobe.so.1", "kit-manifest.txt"):
            check(os.path.exists(os.path.join(host, p)), "unpacked build lacks " + p)
        script = ('. "$1"; deco_gpu_env "$2"; echo "NOTE $deco_gpu_env_note"; "$2/bin/kit_probe"; '
                  '"$2/bin/deco" generate --backend cpu --temperature 0 --steps 24 --ignore-eos --print-ids')
        r = run(["bash", "-c", script, "bash", ENV, host])
        check(r.returncode == 0, "the unpacked build under deco_gpu_env: exit %d, %s" % (r.returncode, r.stderr))
        note = [ln for ln in r.stdout.splitlines() if ln.startswith("NOTE ")]
        check(note and "from the kit: libdecokitprobe.so.1;" in note[0] and "still missing" not in note[0],
              "deco_gpu_env's note: %r" % note)
        check("probe 42" in r.stdout, "the probe did not run: %r" % r.stdout)
        ids = [ln for ln in r.stdout.splitlines() if not ln.startswith(("NOTE ", "probe "))]
        ref = run([deco, "generate", "--backend", "cpu", "--temperature", "0", "--steps", "24", "--ignore-eos",
                   "--print-ids"])
        check(ref.returncode == 0 and ref.stdout.strip() != "", "the original deco: %s" % ref.stderr)
        check("\n".join(ids).strip() == ref.stdout.strip(),
              "unpacked deco's ids differ:\n%s\nvs\n%s" % ("\n".join(ids), ref.stdout))
        r = run(["bash", "-c", '. "$1"; deco_gpu_env "$2"; ls "$2/rt-use"', "bash", ENV, host])
        check(r.stdout.split() == ["libdecokitprobe.so.1"], "rt-use/ holds more than the missing library: %r"
              % r.stdout)

        c = run(["bash", "-c", '. "$1"; deco_gpu_commit /nonexistent "$2"', "bash", ENV, host]).stdout.strip()
        check(commit and c == commit[0] + " (kit)", "commit from the manifest: %r (manifest %r)" % (c, commit))
        c = run(["bash", "-c", '. "$1"; deco_gpu_commit /nonexistent "$2"', "bash", ENV, host],
                env={"DECO_COMMIT": "abc1234"}).stdout.strip()
        check(c == "abc1234", "DECO_COMMIT first: %r" % c)

        r = run(["bash", KIT, "unpack", os.path.join(tmp, "nokit"), os.path.join(tmp, "b2")])
        check(r.returncode == 1 and "build.tar.xz not found" in r.stderr, "unpack without an archive: %d %r"
              % (r.returncode, r.stderr))
        r = run(["bash", KIT, "repack"])
        check(r.returncode == 2 and "usage" in r.stderr, "a bad command: %d %r" % (r.returncode, r.stderr))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d failures" % len(failures), file=sys.stderr)
        return 1
    print("gpu-kit: pack, unpack, the libraries a host lacks, the commit: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
