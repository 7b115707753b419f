#!/usr/bin/env bash
# scripts/gguf/build_llama_cpp.sh [DEST] — builds llama.cpp as a test oracle
# for the GGUF forward (issue 13), from the copy vendored in the
# llama-cpp-python source package on PyPI (pinned below). Not run by CI.
#   1. pip download --no-binary :all: --no-deps llama-cpp-python==VERSION
#   2. unpacks it into DEST (default: .llama-cpp/ at the repository root,
#      ignored by git) and builds, with cmake, the shared libllama and the
#      CLI tools llama-simple, llama-completion and llama-perplexity, CPU only.
# scripts/gguf/llama_cpp_logits.py then loads DEST/build/bin/libllama.so
# through the package's own ctypes bindings (DEST/src/llama_cpp). Takes
# 15-25 minutes on 2 cores; a second run only rebuilds what changed.
# Usage: scripts/gguf/build_llama_cpp.sh [DEST]   (env JOBS: parallel jobs)
set -euo pipefail
version=0.3.36
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-$root/.llama-cpp}
jobs=${JOBS:-$(nproc)}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
src=$dest/src
if [ ! -f "$src/.unpacked-$version" ]; then
  rm -rf "$dest/dl" "$src"
  python3 -m pip download --no-binary :all: --no-deps "llama-cpp-python==$version" -d "$dest/dl"
  mkdir -p "$src"
  tar -xzf "$dest/dl/llama_cpp_python-$version.tar.gz" -C "$src" --strip-components=1
  touch "$src/.unpacked-$version"
fi
# Release, CPU only, no network code; GGML_NATIVE off so the oracle's
# numbers do not depend on the build machine's instruction set extensions
# more than ggml's portable paths do.
cmake -S "$src/vendor/llama.cpp" -B "$dest/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DGGML_NATIVE=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON
cmake --build "$dest/build" -j"$jobs" --target llama llama-simple llama-completion llama-perplexity
ls -l "$dest/build/bin/"libllama.so "$dest/build/bin/"llama-*
echo "build_llama_cpp: llama.cpp from llama-cpp-python $version in $dest/build/bin"
