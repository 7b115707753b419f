#!/usr/bin/env python3
"""tests/perf/gpu_kit_test.py DECO — scripts/gpu-kit.sh and scripts/gpu-env.sh
on the CPU (ctest gpu_kit, label cpu). DECO is the path of the deco program;
its build's lib/ holds libdeco.so.

A small build is made in a temporary folder: DECO, the build's libdeco.so*,
and a probe program linked against a probe library that only a temporary
folder holds (a library this machine has but a GPU host would lack), which
needs a chain of five more such libraries (each needing the next: a host
lacks them one level at a time, as with Criterion, libgit2, GSSAPI,
Kerberos, libkeyutils).
- pack without that folder on LD_LIBRARY_PATH fails (exit 1) naming the
  library; with it, pack writes the archive and a manifest whose rt/ holds
  the probe library and none of the C library's, CUDA's or the build's own;
- unpack into another folder, the probe folder removed: deco_gpu_env
  supplies the probe library and its chain from the kit and nothing else
  (this machine has the rest), the probe runs, and the unpacked deco prints the ids the
  original prints;
- unpack where xz is missing (Python's lzma) gives the same tree: the same
  files, bytes, modes and symbolic links (lib/libdeco.so -> ...);
- deco_gpu_commit: DECO_COMMIT first, else the kit's manifest (naming git's
  commit too where it differs), else git;
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
CHAIN = 5  # libraries the probe library needs one behind the other


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


def tree(top, skip=()):
    """Every entry under top: (path, kind, mode, link target or content)."""
    out = []
    for d, dirs, files in os.walk(top):
        dirs[:] = sorted(x for x in dirs if x not in skip)
        for name in sorted(files + [x for x in dirs if os.path.islink(os.path.join(d, x))]):
            p = os.path.join(d, name)
            st = os.lstat(p)
            if os.path.islink(p):
                out.append((os.path.relpath(p, top), "l", os.readlink(p)))
            else:
                with open(p, "rb") as f:
                    out.append((os.path.relpath(p, top), oct(st.st_mode), hash(f.read())))
    return out


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
        # libdecokitchain1.so.1 .. libdecokitchain5.so.1, each calling the next.
        chain = ["libdecokitchain%d.so.1" % k for k in range(1, CHAIN + 1)]
        for k in range(CHAIN, 0, -1):
            src = os.path.join(tmp, "chain%d.c" % k)
            with open(src, "w") as f:
                if k == CHAIN:
                    f.write("int deco_kit_chain%d(void) { return 1; }\n" % k)
                else:
                    f.write("int deco_kit_chain%d(void);\nint deco_kit_chain%d(void) { return deco_kit_chain%d() + 1; }\n"
                            % (k + 1, k, k + 1))
            args = ["cc", "-shared", "-fPIC", "-Wl,-soname," + chain[k - 1], "-o", os.path.join(extra, chain[k - 1]), src]
            if k < CHAIN:
                args += [os.path.join(extra, chain[k])]
            r = run(args)
            check(r.returncode == 0, "cc (chain library %d): %s" % (k, r.stderr))
        with open(os.path.join(tmp, "probe_lib.c"), "w") as f:
            f.write("int deco_kit_chain1(void);\nint deco_kit_probe(void) { return 37 + deco_kit_chain1(); }\n")
        with open(os.path.join(tmp, "probe.c"), "w") as f:
            f.write('#include <stdio.h>\nint deco_kit_probe(void);\n'
                    'int main(void) { printf("probe %d\\n", deco_kit_probe()); return 0; }\n')
        r = run(["cc", "-shared", "-fPIC", "-Wl,-soname,libdecokitprobe.so.1", "-o",
                 os.path.join(extra, "libdecokitprobe.so.1"), os.path.join(tmp, "probe_lib.c"),
                 os.path.join(extra, chain[0])])
        check(r.returncode == 0, "cc (probe library): " + r.stderr)
        os.symlink("libdecokitprobe.so.1", os.path.join(extra, "libdecokitprobe.so"))
        r = run(["cc", "-o", os.path.join(build, "bin", "kit_probe"), os.path.join(tmp, "probe.c"),
                 "-L" + extra, "-ldecokitprobe", "-Wl,-rpath-link," + extra])
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
        probes = sorted(["libdecokitprobe.so.1"] + chain)
        check(set(probes) <= set(rt), "rt/ lacks the probe library or its chain: %s" % rt)
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
        for p in ["bin/deco", "bin/kit_probe", "rt/libdecokitprobe.so.1", "kit-manifest.txt"] + ["rt/" + c for c in chain]:
            check(os.path.exists(os.path.join(host, p)), "unpacked build lacks " + p)
        script = ('. "$1"; deco_gpu_env "$2"; echo "NOTE $deco_gpu_env_note"; "$2/bin/kit_probe"; '
                  '"$2/bin/deco" generate --backend cpu --temperature 0 --steps 24 --ignore-eos --print-ids')
        r = run(["bash", "-c", script, "bash", ENV, host])
        check(r.returncode == 0, "the unpacked build under deco_gpu_env: exit %d, %s" % (r.returncode, r.stderr))
        note = [ln for ln in r.stdout.splitlines() if ln.startswith("NOTE ")]
        check(note and ("from the kit: libdecokitprobe.so.1 %s;" % " ".join(chain)) in note[0]
              and "still missing" not in note[0],
              "deco_gpu_env's note: %r" % note)
        check("probe 42" in r.stdout, "the probe did not run: %r" % r.stdout)
        ids = [ln for ln in r.stdout.splitlines() if not ln.startswith(("NOTE ", "probe "))]
        ref = run([deco, "generate", "--backend", "cpu", "--temperature", "0", "--steps", "24", "--ignore-eos",
                   "--print-ids"])
        check(ref.returncode == 0 and ref.stdout.strip() != "", "the original deco: %s" % ref.stderr)
        check("\n".join(ids).strip() == ref.stdout.strip(),
              "unpacked deco's ids differ:\n%s\nvs\n%s" % ("\n".join(ids), ref.stdout))
        r = run(["bash", "-c", '. "$1"; deco_gpu_env "$2"; ls "$2/rt-use"', "bash", ENV, host])
        check(sorted(r.stdout.split()) == probes, "rt-use/ is not the missing libraries: %r"
              % r.stdout)

        # unpack with a PATH that has no xz: Python's tarfile must give the same tree.
        noxz = os.path.join(tmp, "noxz")
        os.makedirs(noxz)
        for prog in ("bash", "dirname", "mkdir", "rm", "ls", "wc", "cat"):
            found = shutil.which(prog)
            check(found is not None, "no %s on PATH" % prog)
            if found:
                os.symlink(found, os.path.join(noxz, prog))
        os.symlink(sys.executable, os.path.join(noxz, "python3"))
        host_py = os.path.join(tmp, "host-py", "build")
        r = run([os.path.join(noxz, "bash"), KIT, "unpack", kit, host_py], env={"PATH": noxz})
        check(r.returncode == 0, "unpack without xz: exit %d, %s" % (r.returncode, r.stderr))
        check(tree(host_py) == tree(host, skip=("rt-use",)), "unpack without xz gives another tree")
        check(os.path.islink(os.path.join(host_py, "lib", "libdeco.so")), "unpack without xz: lib/libdeco.so is no link")

        c = run(["bash", "-c", '. "$1"; deco_gpu_commit /nonexistent "$2"', "bash", ENV, host],
                env={"DECO_COMMIT": ""}).stdout.strip()
        check(commit and c == commit[0] + " (kit)", "commit from the manifest: %r (manifest %r)" % (c, commit))
        c = run(["bash", "-c", '. "$1"; deco_gpu_commit /nonexistent "$2"', "bash", ENV, host],
                env={"DECO_COMMIT": "abc1234"}).stdout.strip()
        check(c == "abc1234", "DECO_COMMIT first: %r" % c)
        # With a git tree too (a repository of its own, one commit): the
        # kit's commit first; git's named where it is another commit, not
        # where it abbreviates the same one to another length.
        repo = os.path.join(tmp, "repo")
        os.makedirs(repo)
        for args in (["init", "-q"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
                                      "-m", "t"]):
            r = run(["git", "-C", repo] + args)
            check(r.returncode == 0, "git %s: %s" % (args[-1], r.stderr))
        head = run(["git", "-C", repo, "rev-parse", "HEAD"]).stdout.strip()
        short = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"]).stdout.strip()
        check(len(head) == 40 and short, "the test repository has no commit: %r %r" % (head, short))
        fake = os.path.join(tmp, "fake-kit-build")
        os.makedirs(fake)
        for kit_commit, expect in (("0000000", "0000000 (kit; the tree is at %s)" % short),
                                   (head[:12], head[:12] + " (kit)")):
            with open(os.path.join(fake, "kit-manifest.txt"), "w") as f:
                f.write("commit: %s\nuncommitted changes: no\n" % kit_commit)
            c = run(["bash", "-c", '. "$1"; deco_gpu_commit "$2" "$3"', "bash", ENV, repo, fake],
                    env={"DECO_COMMIT": ""}).stdout.strip()
            check(c == expect, "commit with a git tree (kit %s): %r, expected %r" % (kit_commit, c, expect))

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
