#!/usr/bin/env bash
# The MPI tests under Slurm's srun (docs/mpi.md, "Tests"): a single-node Slurm made for the run
# (munged, slurmctld and slurmd on this host, talking over 127.0.0.1, with a minimal slurm.conf
# written to a temporary directory), then `srun -n 3 --mpi=<plugin> <program> <scenario>` for a
# map, a rank SIGKILLed mid-map and a silent rank, each checked by run_case.sh (exit status,
# report, no process left).
#   slurm.sh <pmix|pmi2> <run_case.sh> <program>     (Open MPI: pmix; MPICH: pmi2)
# Always stops its daemons and removes its files (trap EXIT). Needs root, munged, slurmctld,
# slurmd and srun (packages munge, slurm-wlm): without them it fails, saying so.
set -u
fail() { echo "slurm: FAILED: $*"; exit 1; }
[ $# -eq 3 ] || fail "usage: slurm.sh <pmix|pmi2> <run_case.sh> <program>"
plugin=$1 run=$2 program=$3
[ "$(id -u)" -eq 0 ] || fail "needs root (it runs slurmctld and slurmd): run this test as root"
for c in munged slurmctld slurmd srun sinfo; do
    command -v "$c" >/dev/null || fail "needs the command $c (packages munge, slurm-wlm)"
done
[ -r /etc/munge/munge.key ] || fail "needs /etc/munge/munge.key (package munge)"

dir=$(mktemp -d /tmp/mpih-slurm.XXXXXX) || fail "cannot create a temporary directory"
daemons=()
cleanup() {
    ((${#daemons[@]} == 0)) || { kill "${daemons[@]}" 2>/dev/null; wait "${daemons[@]}" 2>/dev/null; }
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Ports from this script's pid: two runs at once do not share a controller.
port=$((20000 + ($$ % 10000) * 2))
node=$(hostname -s)
mkdir -p "$dir/state" "$dir/spool"
cat >"$dir/slurm.conf" <<EOF
ClusterName=multiproc
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=10 State=UP OverSubscribe=YES
EOF
export SLURM_CONF=$dir/slurm.conf
munged --foreground --force --socket="$dir/munge.sock" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munge.seed" --key-file=/etc/munge/munge.key &
daemons+=($!)
slurmctld -D -f "$SLURM_CONF" >"$dir/slurmctld.out" 2>&1 &
daemons+=($!)
slurmd -D -f "$SLURM_CONF" >"$dir/slurmd.out" 2>&1 &
daemons+=($!)
until=$((SECONDS + 30))
until [ "$(sinfo -h -o %t 2>/dev/null)" = idle ]; do
    if [ $SECONDS -ge $until ]; then
        tail -n 20 "$dir"/*.log "$dir"/*.out
        fail "the node is not idle 30 s after the daemons' start"
    fi
    sleep 0.2
done

# 3 tasks on a node of fewer cores: --overcommit. srun passes this environment to the tasks.
# Each run is bounded, so that this script, not ctest's timeout, always stops the daemons.
srun=(timeout -k 5 45 srun -n 3 --overcommit --mpi="$plugin")
rank_2="MPI rank 2 \(pid [0-9]+ on host [^)]+\)"
failed=0
"$run" pass "PASS map" "${srun[@]}" "$program" map || failed=1
"$run" fail "caught mp::BrokenProcessPool: .*$rank_2 died" "${srun[@]}" "$program" rank_dies ||
    failed=1
MULTIPROC_MPI_SILENCE_TIMEOUT=2 "$run" fail "caught mp::BrokenProcessPool: .*$rank_2 sent nothing for 2 s" \
    "${srun[@]}" "$program" rank_silent || failed=1
[ "$failed" -eq 0 ] || fail "a case failed (above)"
echo "slurm: ok"
