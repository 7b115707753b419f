#!/bin/sh
# tests/mpi/expect_fail_within.sh SECONDS COMMAND... — passes when COMMAND
# exits non-zero within SECONDS (a killed rank must end an MPI job, never
# hang it): fails on success and on the time limit.
limit=$1
shift
start=$(date +%s)
timeout "$limit" "$@"
rc=$?
took=$(( $(date +%s) - start ))
if [ "$rc" -eq 124 ]; then echo "still running after $limit s" >&2; exit 1; fi
if [ "$rc" -eq 0 ]; then echo "exited 0: expected a failure" >&2; exit 1; fi
echo "exited $rc after $took s (limit $limit s)" >&2
exit 0
