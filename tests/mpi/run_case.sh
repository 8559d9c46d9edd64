#!/usr/bin/env bash
# One MPI test case: runs the command, then checks its exit status, its output and that none of
# its processes is left behind.
#   run_case.sh <pass|fail> <regex the output must match> <command...>
# pass: exit status 0; fail: any other status.
set -u
expect=$1 regex=$2
shift 2
out=$("$@" 2>&1)
status=$?
printf '%s\n' "$out"
echo "run_case: exit status $status"
if [ "$expect" = pass ] && [ "$status" -ne 0 ]; then echo "run_case: FAILED: expected exit status 0"; exit 1; fi
if [ "$expect" = fail ] && [ "$status" -eq 0 ]; then echo "run_case: FAILED: expected a non-zero exit status"; exit 1; fi
if ! grep -Eq -- "$regex" <<<"$out"; then echo "run_case: FAILED: output does not match: $regex"; exit 1; fi
# No rank outlives the launcher: no process runs the test program with these arguments.
sleep 0.2
program=$(for a in "$@"; do case $a in /*mpi_program*) echo "$a"; break;; esac; done)
if [ -n "$program" ] && ps -eo args= | grep -F -- "$program" | grep -vq -e grep -e run_case; then
    echo "run_case: FAILED: processes of $program are left:"; ps -eo pid=,args= | grep -F -- "$program" | grep -v -e grep -e run_case
    exit 1
fi
echo "run_case: ok"
