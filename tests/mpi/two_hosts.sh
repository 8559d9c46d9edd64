#!/usr/bin/env bash
# Two hosts simulated on one machine (docs/mpi.md, "Tests"): two network namespaces joined by a
# veth pair with link-local addresses (169.254.77.1 and .2; no route to anywhere else), each
# with its own host name (a UTS namespace), and Open MPI's mpirun on the first host starting the
# second host's daemon through its rsh launcher, with an agent script that enters the other
# host's namespaces where ssh would log in. Three ranks: 0 and 1 on mp-host-a, 2 on mp-host-b.
#   two_hosts.sh <case> <mpirun> <program>        (program: tests/mpi/mpi_program)
# Cases:
#   hosts        a map whose tasks ran on both hosts (the program counts them by host name)
#   remote_dies  rank 2, on mp-host-b, SIGKILLed by this script mid-map
#   link_down    the link taken down mid-map (mp-host-b's end): rank 0's silence deadline
# Each checks the exit status and the report, and that no process is left in either namespace;
# the two failure cases print how long the report and the job's end took after the event.
# Sets up, and always tears down (trap EXIT), the namespaces, the link and its temporary files.
# Needs root, ip (iproute2), unshare and nsenter (util-linux): without them it fails, saying so.
set -u
fail() { echo "two_hosts: FAILED: $*"; exit 1; }
[ $# -eq 3 ] || fail "usage: two_hosts.sh <hosts|remote_dies|link_down> <mpirun> <program>"
scenario=$1 mpirun=$2 program=$3
[ "$(id -u)" -eq 0 ] ||
    fail "needs root (network namespaces, a veth pair, UTS namespaces): run this test as root"
for c in ip unshare nsenter umount; do
    command -v "$c" >/dev/null || fail "needs the command $c (packages iproute2, util-linux)"
done

# Every name carries this script's pid: concurrent runs do not collide, and what a run killed
# before its cleanup left (ctest's timeout sends SIGKILL) is recognised and removed by the next.
prefix=mpih
nsA=$prefix$$a nsB=$prefix$$b dir=/tmp/$prefix.$$
remove_ns() {
    local pids
    pids=$(ip netns pids "$1" 2>/dev/null)
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null
    ip netns del "$1" 2>/dev/null  # takes its end of the veth pair, and so the pair, with it
}
remove_dir() {
    umount "$1/uts-a" "$1/uts-b" 2>/dev/null
    rm -rf "$1"
}
for ns in $(ip netns list | grep -Eo "^$prefix[0-9]+[ab]"); do
    owner=${ns#"$prefix"}
    kill -0 "${owner%?}" 2>/dev/null || remove_ns "$ns"
done
for d in /tmp/$prefix.*; do
    [ -d "$d" ] && ! kill -0 "${d##*.}" 2>/dev/null && remove_dir "$d"
done

mp_pid=
cleanup() {
    [ -z "$mp_pid" ] || kill -9 "$mp_pid" 2>/dev/null
    remove_ns "$nsA"
    remove_ns "$nsB"
    remove_dir "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The hosts. IPv6 is off in both namespaces, so that the link carries only the two addresses.
# A cut link must end in bounded time at the launcher's level too: Open MPI's daemons notice a
# silent peer through TCP only, after the kernel's retransmissions (net.ipv4.tcp_retries2=15:
# about 15 minutes) or their keepalives (oob_tcp_keepalive_time=300 s by default). Both are
# shortened here (tcp_retries2 is per network namespace), as a cluster would tune them.
mkdir -m 700 "$dir" || fail "cannot create $dir"
ip netns add "$nsA" && ip netns add "$nsB" || fail "cannot create the network namespaces"
for ns in "$nsA" "$nsB"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 net.ipv4.tcp_retries2=3 ||
        fail "cannot set the sysctls of $ns"
done
ip link add name veth-a netns "$nsA" type veth peer name veth-b netns "$nsB" &&
    ip -n "$nsA" addr add 169.254.77.1/24 dev veth-a &&
    ip -n "$nsB" addr add 169.254.77.2/24 dev veth-b &&
    ip -n "$nsA" link set lo up && ip -n "$nsB" link set lo up &&
    ip -n "$nsA" link set veth-a up && ip -n "$nsB" link set veth-b up ||
    fail "cannot set up the veth pair"
touch "$dir/uts-a" "$dir/uts-b"
unshare --uts="$dir/uts-a" hostname mp-host-a && unshare --uts="$dir/uts-b" hostname mp-host-b ||
    fail "cannot create the UTS namespaces"

# Open MPI's rsh launcher runs "<agent> <host> <command words...>"; as ssh would, the agent runs
# the words with a shell on that host: here, inside its namespaces.
cat >"$dir/agent" <<EOF
#!/bin/sh
host=\$1
shift
case \$host in
    mp-host-a) h=a ;;
    mp-host-b) h=b ;;
    *) echo "two_hosts agent: unknown host \$host" >&2; exit 1 ;;
esac
exec nsenter --net=/run/netns/$prefix$$\$h --uts=$dir/uts-\$h -- /bin/sh -c "\$*"
EOF
chmod +x "$dir/agent"
printf 'mp-host-a slots=2\nmp-host-b slots=1\n' >"$dir/hosts"

out=$dir/out
net=169.254.77.0/24
arg=hosts
[ "$scenario" = hosts ] || arg=until_broken
nsenter --net="/run/netns/$nsA" --uts="$dir/uts-a" -- "$mpirun" --allow-run-as-root \
    --hostfile "$dir/hosts" -n 3 --mca plm_rsh_agent "$dir/agent" \
    --mca oob_tcp_if_include $net --mca btl_tcp_if_include $net --mca btl tcp,self \
    --mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 1 \
    --mca oob_tcp_keepalive_probes 2 -x MULTIPROC_MPI_SILENCE_TIMEOUT=3 \
    "$program" "$arg" >"$out" 2>&1 &
mp_pid=$!

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
# Waits until the output matches $1 (status 0), or mpirun ended or $2 seconds passed (1).
wait_for() {
    local until=$((SECONDS + $2))
    while ! grep -Eq -- "$1" "$out"; do
        kill -0 "$mp_pid" 2>/dev/null && [ $SECONDS -lt $until ] || { grep -Eq -- "$1" "$out"; return; }
        sleep 0.02
    done
}
# Waits at most $1 seconds for mpirun's end; sets `status` to its exit status.
wait_end() {
    local until=$((SECONDS + $1))
    while kill -0 "$mp_pid" 2>/dev/null; do
        [ $SECONDS -lt $until ] || { cat "$out"; fail "mpirun still runs $1 s later: a hang"; }
        sleep 0.02
    done
    wait "$mp_pid"
    status=$?
    mp_pid=
}
# Waits at most $1 seconds until neither namespace holds a process.
wait_empty() {
    local until=$((SECONDS + $1)) left
    for (( ; ; )); do
        left=$(ip netns pids "$nsA"; ip netns pids "$nsB")
        [ -n "$left" ] || return 0
        [ $SECONDS -lt $until ] || break
        sleep 0.02
    done
    echo "two_hosts: processes left in the namespaces:"
    ps -o pid=,args= -p "$(echo $left | tr ' ' ,)"
    fail "processes are left $1 s after the job's end"
}
# The pid of the rank on mp-host-b.
remote_rank() {
    local p
    for p in $(ip netns pids "$nsB"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$(basename "$program" | cut -c1-15)" ] && echo "$p"
    done
}

case $scenario in
hosts)
    wait_end 60
    cat "$out"
    [ "$status" -eq 0 ] || fail "exit status $status, expected 0"
    grep -Eq "tasks by host: mp-host-a=[1-9][0-9]* mp-host-b=[1-9]" "$out" ||
        fail "the tasks did not run on both mp-host-a and mp-host-b"
    ;;
remote_dies | link_down)
    wait_for "^20 results" 40 || { cat "$out"; fail "the map did not start"; }
    victim=$(remote_rank)
    [ -n "$victim" ] || { cat "$out"; fail "no rank found on mp-host-b"; }
    start=$EPOCHREALTIME
    if [ "$scenario" = remote_dies ]; then
        event="rank 2 (pid $victim) SIGKILLed"
        kill -9 "$victim"
        # Open MPI's mpirun ends the job about 1 s after a rank dies, usually before rank 0's
        # silence deadline: either report names the rank, its pid and its host.
        report="MPI rank 2 \(pid $victim on host mp-host-b\)|process rank 2 with PID $victim on node mp-host-b exited on signal 9"
    else
        event="link down"
        ip -n "$nsB" link set veth-b down || fail "cannot take the link down"
        report="MPI rank 2 \(pid $victim on host mp-host-b\) sent nothing for 3 s"
    fi
    wait_for "$report" 30 || { cat "$out"; fail "no report matching: $report"; }
    t_report=$(since "$start")
    wait_end 30
    t_end=$(since "$start")
    wait_empty 15
    t_empty=$(since "$start")
    cat "$out"
    [ "$status" -ne 0 ] || fail "exit status 0, expected non-zero"
    if [ "$scenario" = link_down ]; then
        grep -Eq "caught mp::BrokenProcessPool after [0-9]+ results: .*$report" "$out" ||
            fail "rank 0's map did not end in mp::BrokenProcessPool naming rank 2"
    fi
    echo "two_hosts: $scenario: $event -> report $t_report s, -> mpirun's end $t_end s," \
        "-> no process left $t_empty s (exit status $status)"
    ;;
*) fail "unknown case $scenario" ;;
esac
wait_empty 10
echo "two_hosts: ok"
