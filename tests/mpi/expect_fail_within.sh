#!/bin/sh
# tests/mpi/expect_fail_within.sh SECONDS MARKER KILLED COMMAND... — passes
# when COMMAND exits non-zero within SECONDS (a killed rank must end an MPI
# job, never hang it), its output holds MARKER (the collectives worked
# before the kill) and a line matching KILLED (the launcher saw the kill,
# so the failure is that one and not another): fails on success, on the
# time limit and when either is missing.
limit=$1 marker=$2 killed=$3
shift 3
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
timeout "$limit" "$@" >"$out" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
cat "$out" >&2
if [ "$rc" -eq 124 ]; then echo "still running after $limit s" >&2; exit 1; fi
if [ "$rc" -eq 0 ]; then echo "exited 0: expected a failure" >&2; exit 1; fi
grep -q -- "$marker" "$out" || { echo "no '$marker' before the failure" >&2; exit 1; }
grep -q -- "$killed" "$out" || { echo "no line matching '$killed': not the kill" >&2; exit 1; }
echo "exited $rc after $took s (limit $limit s)" >&2
exit 0
