#!/usr/bin/env python3
"""Regenerates RELIABILITY.md: the faults and hostile inputs multiproc is tried against.

    python3 scripts/reliability.py [--repeat N] [--fuzz-seconds S] [--build build/default]

Each row names a fault, how it is made, and the tests that make it; every test is run
--repeat times (default 3) from the built test binaries (every behaviour test is already one
instance per start method), and the row records how many runs, how many passed and the
longest run. The fuzzing rows come from scripts/fuzz.sh (run with --fuzz-seconds per harness,
default 30; 0 reads the last build/fuzz/results.tsv instead). Nothing here is timed against a
goal: the times are the bound a user can expect, as measured on this machine.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (fault or hostile input, how it is made, binary, gtest filter)
ROWS = [
    ("A worker killed mid-task (SIGKILL)", "Pool/executor/parallel_map worker killed while running an item",
     "pool_faults_test", "*WorkerDeath*:*Retries*"),
    ("", "", "futures_test", "*KilledWorker*"),
    ("", "", "parallel_test", "*KilledWorker*"),
    ("A lock holder killed", "SIGKILL while holding Lock/RLock/Condition/Value lock, at arbitrary moments",
     "synchronize_owner_death_test", "*HolderKilled*:*Killed*"),
    ("", "", "sharedctypes_test", "*HolderKilled*"),
    ("A queue producer or consumer killed", "SIGKILL right after put, inside get, while waiting",
     "queues_faults_test", "*Killed*"),
    ("A dead parent", "daemonic children and grandchildren when the parent is SIGKILLed",
     "process_exit_test", "*DiesWithKilledParent*"),
    ("", "", "process_test", "*ParentProcessFirstAsked*"),
    ("A killed forkserver", "SIGKILL to the server; its children and the next start",
     "forkserver_test", "*KilledServer*:*OutlivesAKilledServer*"),
    ("A peer dying mid-frame", "Connection peer exits or dies while sending",
     "connection_cross_process_test", "*PeerProcessDeath*:*SenderDyingMidFrame*"),
    ("", "", "connection_test", "*PeerClose*"),
    ("Truncated, lying and oversized frames", "Connection headers that lie about their length",
     "connection_test", "*Lying*:*Truncated*"),
    ("Corrupt codec bytes and hostile counts", "every truncation, bad tags, counts the input cannot hold, "
     "bools and padding in plain structs", "reduction_test",
     "*Corrupt*:*Truncat*:*Count*:*Budget*:*Hostile*:*Bool*:*Padding*"),
    ("Forged shipped calls and identities", "offsets moved by a byte, non-entry points, bad build ids, "
     "libraries of another build (never loaded), paths that are not modules",
     "callable_forged_test", "*Corrupt*:*Mismatch*:*EntryPoint*:*CallableLoad*:*Forged*"),
    ("", "", "callable_exec_test", "*Mismatch*"),
    ("Corrupt handles", "Value/Array handles with bad sizes", "sharedctypes_test", "*Corrupt*"),
    ("Corrupt queue memory", "queue header and slot states overwritten by another process",
     "queues_faults_test", "*Corrupt*"),
    ("Malformed forkserver requests", "11 kinds of bad request, then normal starts; the server serves on",
     "forkserver_test", "*Malformed*"),
    ("Lying engine frame headers", "a 4 GiB header to a worker and to the supervisor under RLIMIT_AS",
     "pool_faults_test", "*HugeFrameHeader*"),
    ("Handled signals during blocking calls", "100 Hz SIGALRM (SA_RESTART) during every blocking call; "
     "Ctrl-C to the process group with and without mp::SigintGuard", "signals_test", "*"),
    ("", "", "pool_faults_test", "*Sigint*"),
    ("", "", "synchronize_test", "*SurviveSignals*"),
    ("Hostile and failing network peers", "wrong keys both ways, a 1000-byte pre-auth message, a silent "
     "peer, descriptors over TCP, code from an untrusted peer, Python peers with wrong keys",
     "listener_test", "*WrongKey*:*SmallMessages*:*Stalled*:*Descriptors*:*NameCode*:*Python*"),
    ("Objects outliving their owner", "imap/map_async/executor map read after the Pool/Executor is gone",
     "pool_faults_test", "*Destroyed*"),
    ("", "", "futures_test", "*Destroyed*"),
    ("Start method inheritance", "grandchildren of spawn/forkserver/fork children",
     "context_test", "*ChildStartMethod*"),
    ("Timeouts", "every timed wait expires on time and leaves the object usable",
     "futures_test", "*Timeout*"),
    ("", "", "queues_test", "*Timeout*:*Full*"),
    ("", "", "synchronize_test", "*Timeout*"),
]


def run_tests(build, binary, filt, repeat):
    """Returns {test name: [ (passed, seconds), ... ]} for `repeat` runs of binary's filter."""
    path = os.path.join(build, "tests", binary)
    out = {}
    if not os.path.exists(path):
        return None
    for _ in range(repeat):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run([path, "--gtest_filter=" + filt, "--gtest_output=json:" + f.name],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
            try:
                data = json.load(open(f.name))
            except (OSError, ValueError):
                out.setdefault("(binary crashed)", []).append((False, 0.0))
                continue
        for suite in data.get("testsuites", []):
            for t in suite.get("testsuite", []):
                if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                    continue
                name = suite["name"] + "." + t["name"]
                ok = not t.get("failures")
                secs = float(t.get("time", "0s").rstrip("s") or 0)
                out.setdefault(name, []).append((ok, secs))
    return out


def fuzz_rows(seconds):
    if seconds > 0:
        subprocess.run([os.path.join(ROOT, "scripts", "fuzz.sh"), str(seconds)], cwd=ROOT)
    tsv = os.path.join(ROOT, "build", "fuzz", "results.tsv")
    if not os.path.exists(tsv):
        return []
    lines = open(tsv).read().strip().splitlines()[1:]
    return [l.split("\t") for l in lines]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fuzz-seconds", type=int, default=30)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "default"))
    args = ap.parse_args()

    rows = []
    fault = how = ""
    total_runs = total_fail = 0
    for f, h, binary, filt in ROWS:
        if f:
            fault, how = f, h
        res = run_tests(args.build, binary, filt, args.repeat)
        if res is None:
            sys.exit(f"reliability: {binary} is not built under {args.build}")
        runs = sum(len(v) for v in res.values())
        fails = sum(1 for v in res.values() for ok, _ in v if not ok)
        longest = max((s for v in res.values() for _, s in v), default=0.0)
        total_runs += runs
        total_fail += fails
        outcome = "all passed" if runs and not fails else ("no test matched" if not runs else f"{fails} FAILED")
        rows.append((f, h, f"`{binary}` `{filt}`", len(res), runs, outcome, f"{longest:.2f} s"))
        print(f"{binary:20} {filt:50} tests {len(res):3} runs {runs:4} {outcome}", flush=True)

    fz = fuzz_rows(args.fuzz_seconds)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = []
    md.append("# Reliability: the faults and hostile inputs multiproc is tried against\n")
    md.append("Regenerated by `python3 scripts/reliability.py` (after `cmake --build --preset default`;")
    md.append("`--repeat N` runs every test N times, `--fuzz-seconds S` fuzzes each harness S seconds).")
    md.append(f"Last generated {now} on {platform.node() or 'this machine'} ({os.cpu_count()} cores).\n")
    md.append("Every behaviour test below runs once per start method (fork, spawn, forkserver), so a")
    md.append("test counts three instances. \"Longest run\" is the slowest single test: the bound on how")
    md.append("long the fault takes to surface as an error, measured here, not a goal.\n")
    md.append("## Faults (tests of the normal suite)\n")
    md.append("| fault / hostile input | how | tests (binary, filter) | test instances | runs | outcome | longest run |")
    md.append("| --- | --- | --- | ---: | ---: | --- | ---: |")
    for r in rows:
        md.append("| " + " | ".join(str(x) for x in r) + " |")
    md.append(f"\nTotal: {total_runs} runs, {total_fail} failed.\n")
    md.append("## Fuzzing (libFuzzer, ASan + UBSan, -malloc_limit_mb=256)\n")
    md.append("`scripts/fuzz.sh SECONDS` builds the `fuzz` preset and runs every harness of tests/fuzz/")
    md.append("from its committed seed corpus; CI runs it too. A crash, a sanitizer report, a hang or an")
    md.append("allocation over 256 MB fails the harness; each one found became a regression test.\n")
    if fz:
        md.append("| harness | seconds | executions | coverage (edges) | features | corpus | outcome |")
        md.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in fz:
            md.append("| " + " | ".join(r) + " |")
    else:
        md.append("(no fuzz results: run scripts/fuzz.sh)")
    md.append("\n## Soak and load (`ctest --preset soak`)\n")
    md.append("Bounded soak tests run by CI (tests/soak_test.cpp): 1,000,000 tiny tasks through Pool.map")
    md.append("and through the executor; 10,000 processes started and joined with descriptor count and")
    md.append("RSS flat; 8 producer and 8 consumer processes on one Queue for 60 s with every item")
    md.append("accounted for. Their figures are printed in the CI log.\n")
    md.append("## Under sanitizers (CI)\n")
    md.append("The whole suite runs under AddressSanitizer + UndefinedBehaviorSanitizer (`asan` preset)")
    md.append("and the thread-involved tests under ThreadSanitizer (`tsan` preset) in every CI run.")
    open(os.path.join(ROOT, "RELIABILITY.md"), "w").write("\n".join(md) + "\n")
    print(f"RELIABILITY.md written: {total_runs} runs, {total_fail} failed")
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
