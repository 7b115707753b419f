# scripts/gpu-env.sh — sourced (not run) by the scripts that run a prebuilt
# build/ on a GPU host (perf/gpu_lib.sh, which tests/gpu/run.sh and the perf
# GPU scripts source; perf/tp_cost.sh, perf/profile_step.sh;
# scripts/gpu-kit.sh for deco_gpu_ldd; scripts/run-tp-suite.sh does not: it runs a build
# made on the host itself, through ctest):
#   . scripts/gpu-env.sh; deco_gpu_env "$build"
# deco_gpu_env BUILD puts nvcc's folder on PATH and BUILD/criterion-rt,
# BUILD/lib and the toolkit's lib64 in front of LD_LIBRARY_PATH. For a build
# unpacked from a kit (scripts/gpu-kit.sh; it has BUILD/rt/), it then asks
# the loader (ldd) which libraries the binaries cannot find on this host and
# supplies only those: from BUILD/rt/ through symbolic links in BUILD/rt-use/,
# or, for the CUDA libraries a kit leaves out (cuBLAS, cuSOLVER, NCCL, ...),
# from the folders of Python's nvidia-* wheels when the toolkit lacks them.
# It sets deco_gpu_env_note to one line saying what it supplied and what is
# still missing (the scripts write it into their summary).
# deco_gpu_commit ROOT BUILD prints the commit: $DECO_COMMIT, else the
# kit's manifest's for a build unpacked from a kit (naming git's too where
# the tree is at another), else git's, else "unknown".
# deco_gpu_sass BUILD prints libdeco.so's instruction counts.

# deco_gpu_ldd BUILD: ldd's report on every program of BUILD/bin and shared
# library of BUILD/lib (also what scripts/gpu-kit.sh packs from).
deco_gpu_ldd() {
  local f
  for f in "$1"/bin/* "$1"/lib/*.so*; do
    [ -f "$f" ] && ldd "$f" 2>/dev/null || true
  done
}

# deco_gpu_missing BUILD: the libraries BUILD's binaries and shared libraries
# need that the loader cannot find with the current LD_LIBRARY_PATH.
deco_gpu_missing() {
  deco_gpu_ldd "$1" | awk '$2 == "=>" && $3 == "not" {print $1}' | sort -u
}

deco_gpu_env() {
  local build=$1 cuda_bin
  cuda_bin=$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")
  case ":$PATH:" in *":$cuda_bin:"*) ;; *) export PATH=$PATH:$cuda_bin ;; esac
  # No empty entry (an empty entry is the working folder to the loader).
  # A script run by another that set up this build (gpu_step.sh runs
  # profile_step.sh) inherits its environment: nothing to redo, and its
  # rt-use/ links must not be rebuilt under the caller.
  if [ "${DECO_GPU_ENV_BUILD:-}" = "$build" ]; then
    deco_gpu_env_note="libraries: as set up by the calling script"
    return 0
  fi
  export LD_LIBRARY_PATH=$build/criterion-rt:$build/lib:$cuda_bin/../lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export DECO_GPU_ENV_BUILD=$build
  deco_gpu_env_note="libraries: the host's own"
  [ -d "$build/rt" ] || return 0
  local use=$build/rt-use kit="" wheel="" missing m d wheel_dirs=""
  rm -rf "$use" && mkdir -p "$use" || return 1
  export LD_LIBRARY_PATH=$use:$LD_LIBRARY_PATH
  # Each round supplies what ldd reports missing; a supplied library's own
  # needs show up in the next round (a chain can be long: a test binary,
  # Criterion, libgit2, GSSAPI, Kerberos, libkeyutils). It ends when a round
  # supplies nothing; each round that goes on links one more library.
  while :; do
    missing=$(deco_gpu_missing "$build")
    [ -n "$missing" ] || break
    local progress=0
    for m in $missing; do
      if [ -e "$build/rt/$m" ] && [ ! -e "$use/$m" ]; then
        ln -s "../rt/$m" "$use/$m" && kit="$kit $m" && progress=1
        continue
      fi
      [ -n "$wheel_dirs" ] || wheel_dirs=$( (python3 - || true) <<'EOF' 2>/dev/null
import glob, os
try:
    import nvidia
    for p in nvidia.__path__:
        for d in sorted(glob.glob(os.path.join(p, '*', 'lib'))):
            print(d)
except Exception:
    pass
EOF
)
      while IFS= read -r d; do  # one folder a line: a path may hold spaces
        if [ -n "$d" ] && [ -e "$d/$m" ] && [ ! -e "$use/$m" ]; then
          ln -s "$d/$m" "$use/$m" && wheel="$wheel $m" && progress=1
          break
        fi
      done <<<"$wheel_dirs"
    done
    [ "$progress" = 1 ] || break
  done
  # $missing is current: the last round linked nothing, or nothing was missing.
  deco_gpu_env_note="libraries: the host's own; from the kit:${kit:- none}; from Python's nvidia wheels:${wheel:- none}"
  [ -z "$missing" ] || deco_gpu_env_note="$deco_gpu_env_note; still missing: $(echo $missing)"
}

deco_gpu_commit() {
  local root=$1 build=$2 c="" g=""
  if [ -n "${DECO_COMMIT:-}" ]; then echo "$DECO_COMMIT"; return; fi
  g=$(git -C "$root" rev-parse --short HEAD 2>/dev/null) || g=""
  # The binaries are the kit's: its commit, and the tree's where it differs.
  [ -f "$build/kit-manifest.txt" ] && c=$(awk -F': ' '$1 == "commit" {print $2}' "$build/kit-manifest.txt")
  if [ -n "$c" ]; then
    # Two gits may abbreviate one commit to different lengths.
    case "$g:$c" in
      ":"* | "$c"*":$c" | "$g:$g"*) echo "$c (kit)" ;;
      *) echo "$c (kit; the tree is at $g)" ;;
    esac
    return
  fi
  echo "${g:-unknown}"
}

# deco_gpu_sass BUILD: one line counting the tensor-core instructions and
# the local-memory spills in BUILD's libdeco.so (cuobjdump).
deco_gpu_sass() {
  local sass
  sass=$(cuobjdump --dump-sass "$1/lib/libdeco.so" 2>/dev/null)
  echo "sass: HMMA $(grep -c HMMA <<<"$sass") HGMMA $(grep -c HGMMA <<<"$sass") LDL $(grep -c LDL <<<"$sass") STL $(grep -c STL <<<"$sass")"
}
