#!/usr/bin/env bash
# scripts/install-deps.sh [--fuzz] — checks the Debian packages deco's tests
# need and installs the missing ones. Nothing missing: does nothing, uses no
# network, exits 0. Missing and run as root: apt-get installs them. Missing
# otherwise: prints the exact `sudo apt-get install ...` line and exits 1.
#   --fuzz   also what .ci/run's fuzz and sanitizer stages need (clang and
#            its runtime libraries)
# The CUDA toolkit is optional (without nvcc the build is CPU-only) and is
# not installed here.
set -euo pipefail
pkgs=(cmake make gcc pkg-config libcriterion-dev)
for a in "$@"; do
  case "$a" in
    --fuzz) pkgs+=(clang libclang-rt-dev) ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
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
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  exit 0
fi
echo "install-deps: missing packages; run:" >&2
echo "sudo apt-get install -y --no-install-recommends ${missing[*]}"
exit 1
