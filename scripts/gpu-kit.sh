#!/usr/bin/env bash
# scripts/gpu-kit.sh — moves a build made on one machine to a GPU host that
# has the CUDA toolkit (and Python's nvidia-* wheels) but none of this
# machine's other libraries, as one small archive.
#
#   scripts/gpu-kit.sh pack [BUILD [KIT]]     (here; BUILD default build/,
#                                              KIT default .gpu-kit/)
#   scripts/gpu-kit.sh unpack [KIT [BUILD]]   (on the GPU host)
#
# pack writes KIT/build.tar.xz and KIT/manifest.txt. The archive holds
# BUILD's bin/, its shared libraries (lib/*.so*, not the static ones) and
# rt/: a copy of every library those binaries load, as ldd resolves it here,
# except the build's own (libdeco), the C library's (libc, libm, libdl,
# libpthread, librt, libresolv, the loader) and CUDA's (the driver, cudart,
# cuBLAS, cuSOLVER, NCCL, ...), which must match the GPU host's driver and
# come from its toolkit. Test binaries linked with the static libdeco repeat
# most of their bytes, so the archive compresses well with one large xz
# window (a CUDA build of some 180 MiB packs into about 12 MiB).
# manifest.txt (its first lines also packed as kit-manifest.txt, which
# unpack puts in BUILD and marks it as a kit's) gives the commit,
# whether the tree had changes, the CUDA architectures, the sizes, and what
# the working tree, the kit and the mini SmolLM2 model weigh together.
#
# unpack replaces BUILD/bin, BUILD/lib and BUILD/rt with the archive's (xz,
# or Python's lzma where xz is missing). The GPU scripts then take from rt/
# only the libraries the host lacks (scripts/gpu-env.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: scripts/gpu-kit.sh pack [BUILD [KIT]] | unpack [KIT [BUILD]]"
. "$root/scripts/gpu-env.sh"  # deco_gpu_ldd

# The libraries a kit never carries: the C library's and CUDA's.
skip='^(ld-linux[^ ]*|linux-vdso\.so\.1|lib(c|m|dl|pthread|rt|resolv|util)\.so\.[0-9]+'
skip+='|lib(cuda|cudart|cublas|cublasLt|cusolver|cusolverMg|cusparse|cufft|curand|nvJitLink|nvrtc|nccl)\.so.*'
skip+='|libnvidia-[a-z-]*\.so.*)$'

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

pack() {
  local build=${1:-$root/build} kit=${2:-$root/.gpu-kit}
  build=$(cd "$build" && pwd) || exit 1
  [ -d "$build/bin" ] && ls "$build"/lib/libdeco.so* >/dev/null 2>&1 || {
    echo "gpu-kit: $build has no bin/ and lib/libdeco.so: build it first (docs/GPU.md)" >&2
    exit 1
  }
  # A build CMake made is brought up to date first: a kit of stale
  # binaries would run old kernels under the current scripts and tests.
  if [ -f "$build/CMakeCache.txt" ]; then
    cmake --build "$build" -j "$(nproc)" >/dev/null || {
      echo "gpu-kit: cmake --build $build failed: fix the build before packing it" >&2
      exit 1
    }
  fi
  mkdir -p "$kit"
  kit=$(cd "$kit" && pwd)
  # Nothing of an earlier kit is left beside this one, whatever fails below.
  rm -f "$kit/manifest.txt" "$kit/build.tar.xz"
  # The manifest the archive carries as kit-manifest.txt marks a build
  # unpacked from a kit (scripts/gpu-window.sh), so it is written beside,
  # not into, the build packed (where earlier packs left it: removed).
  rm -f "$build/kit-manifest.txt"
  stage=$(mktemp -d "${TMPDIR:-/tmp}/deco-kit.XXXXXX") # global: the EXIT trap reads it
  trap 'rm -rf "$stage"' EXIT
  # One ldd pass: what cannot be found fails the pack; the rest is rt/:
  # every library the binaries load but the build's, the C library's and CUDA's.
  local report lost
  report=$(deco_gpu_ldd "$build")
  lost=$(awk '$2 == "=>" && $3 == "not" {print $1 " => not found"}' <<<"$report" | sort -u)
  if [ -n "$lost" ]; then
    echo "gpu-kit: binaries in $build need libraries this machine cannot find:" >&2
    echo "$lost" >&2
    exit 1
  fi
  rm -rf "$build/rt" "$build/rt-use"
  mkdir -p "$build/rt"
  local f name path n=0
  while read -r name path; do
    [[ $name =~ $skip ]] && continue
    case $path in "$build"/*) continue ;; esac  # the build's own (libdeco)
    cp -L "$path" "$build/rt/$name"
    n=$((n + 1))
  done < <(awk '$2 == "=>" && substr($3, 1, 1) == "/" {print $1, $3}' <<<"$report" | sort -u -k1,1)
  local commit dirty archs
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$([ -z "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo no || echo yes)
  archs=$(awk -F= '/^DECO_CUDA_ARCHS:/ {print $2}' "$build/CMakeCache.txt" 2>/dev/null || true)
  local cuda
  cuda=$(awk -F= '/^DECO_CUDA:/ {print $2}' "$build/CMakeCache.txt" 2>/dev/null || true)
  {
    echo "commit: $commit"
    echo "uncommitted changes: $dirty"
    echo "cuda: ${cuda:-unknown}"
    echo "cuda archs: ${archs:-unknown}"
    echo "packed: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "libraries in rt/: $n ($(ls "$build/rt" | tr '\n' ' '))"
  } >"$stage/kit-manifest.txt"
  local libs=()
  for f in "$build"/lib/*.so*; do libs+=("lib/$(basename "$f")"); done
  tar -C "$build" -cf - bin "${libs[@]}" rt -C "$stage" kit-manifest.txt |
    xz -9e --lzma2=dict=192MiB -T1 >"$kit/build.tar.xz.tmp"
  mv "$kit/build.tar.xz.tmp" "$kit/build.tar.xz"
  local raw packed tree=0 model=0
  raw=$(du -cb "$build/bin" "$build"/lib/*.so* "$build/rt" | tail -n 1 | cut -f1)
  packed=$(stat -c %s "$kit/build.tar.xz")
  if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    # A tracked file deleted from the tree has no size (stat fails on it).
    tree=$(cd "$root" && git ls-files -z --cached --others --exclude-standard |
             { xargs -0 -r stat -c %s 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }')
  fi
  [ -f "$root/models-cache/SmolLM2-135M-mini.gguf" ] &&
    model=$(stat -c %s "$root/models-cache/SmolLM2-135M-mini.gguf")
  {
    cat "$stage/kit-manifest.txt"
    echo "build: $(mib "$raw") MiB, packed $(mib "$packed") MiB"
    echo "working tree (tracked and untracked, not ignored): $(mib "$tree") MiB"
    echo "models-cache/SmolLM2-135M-mini.gguf: $(mib "$model") MiB"
    echo "tree + kit + mini model: $(mib $((tree + packed + model))) MiB"
  } >"$kit/manifest.txt"
  cat "$kit/manifest.txt"
}

unpack() {
  local kit=${1:-$root/.gpu-kit} build=${2:-$root/build}
  [ -f "$kit/build.tar.xz" ] || { echo "gpu-kit: $kit/build.tar.xz not found (scripts/gpu-kit.sh pack)" >&2; exit 1; }
  mkdir -p "$build"
  # gpu-window-done.txt: what passed on the build this one replaces.
  rm -rf "$build/bin" "$build/lib" "$build/rt" "$build/rt-use" "$build/kit-manifest.txt" "$build/gpu-window-done.txt"
  if command -v xz >/dev/null 2>&1; then
    xz -dc "$kit/build.tar.xz" | tar -C "$build" -xf -
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$kit/build.tar.xz" "$build"
  fi
  echo "gpu-kit: unpacked into $build: $(ls "$build/bin" | wc -l) programs, $(ls "$build/rt" | wc -l) libraries in rt/"
  cat "$build/kit-manifest.txt"
}

case "${1:-}" in
  pack) shift; [ $# -le 2 ] || { echo "$usage" >&2; exit 2; }; pack "$@" ;;
  unpack) shift; [ $# -le 2 ] || { echo "$usage" >&2; exit 2; }; unpack "$@" ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
