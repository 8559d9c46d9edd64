#!/usr/bin/env python3
"""Runs every MPI row of docs/bench.md in one go and prints the table with its ratios.

    cmake --build --preset default --target mpi_tiny mpi_hello
    python3 bench/mpi_rows.py [--build-dir build/default] [--runs 5] [--no-mpi4py] [--filter RE]

Rows (each side a fresh process or mpirun job per run; runs alternate between the two sides of
a row, so that the load of the shared machine falls on both alike; the table gives the median
of the runs, with min..max, and the ratio of the medians):

  tiny map      Pool::map(inc, 2,000,000 ints): 3 ranks (2 run tasks) vs a local Pool(2)
  tiny async    20,000 apply_async(inc, x) then every get: the same
  1 ms tasks    Pool::map over 400 tasks of ~1 ms of CPU: 2 worker ranks vs 2 local workers
  mpi4py 1,000 / 100,000
                Pool::map(inc, N) on 3 ranks vs MPIPoolExecutor.map(inc, N) on 3 ranks
                (`mpirun -n 3 /usr/bin/python3 -m mpi4py.futures bench/mpi4py_map.py N`),
                with its default chunksize of 1; a second row gives it chunksize N / 8
  startup       from the start of `mpirun -n 3` to the first result of a one-task map, vs the
                whole run of a bare MPI program (MPI_Init, MPI_Finalize) under the same mpirun;
                a second row times the whole run of that map (a time: the ratio is
                multiproc / bare, lower is better)

The mpi4py rows need Debian's python3-mpi4py (apt-get install python3-mpi4py); without it they
are skipped with a note. Each C++ run prints the median of its own timed rounds (bench/mpi_tiny).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from run import fmt  # the number format of run.py's tables

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"


def mpirun(n):
    cmd = ["mpirun", "-n", str(n), "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    return cmd


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout
    return out.split()


def rate(cmd):
    """tasks/s printed by bench/mpi_tiny or bench/mpi4py_map.py."""
    return float(run(cmd)[-1])


def startup(cmd, first):
    """Seconds from the start of cmd to the first result (first) or to its end (not first)."""
    t0 = time.time()
    fields = run(cmd)
    return float(fields[-1]) - t0 if first else time.time() - t0


def has_mpi4py():
    return subprocess.run([PYTHON, "-c", "import mpi4py.futures"], capture_output=True).returncode == 0


def measure(rows, runs):
    """rows: (name, unit, higher_is_better, goal, base_label, base(), mp()) -> medians."""
    results = []
    for name, unit, higher, goal, label, base, ours, nruns in rows:
        b, m = [], []
        for i in range(nruns or runs):
            # Alternate which side goes first.
            if i % 2:
                m.append(ours())
                b.append(base())
            else:
                b.append(base())
                m.append(ours())
        results.append((name, unit, higher, goal, label, b, m))
        print(f"  {name}: {label} {b}, multiproc {m}", file=sys.stderr, flush=True)
    return results


def table(results):
    lines = [
        "| row | baseline | baseline median (min..max) | multiproc median (min..max) | unit | "
        "multiproc / baseline | goal |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, unit, higher, goal, label, b, m in results:
        mb, mm = statistics.median(b), statistics.median(m)
        ratio = mm / mb  # a rate: higher is better; a time: lower is better
        if goal is None:
            verdict = "(for information)"
        else:
            verdict = f">= {goal}x: " + ("met" if ratio >= goal else "not met")
        lines.append(
            f"| {name} | {label} | {fmt(mb)} ({fmt(min(b))}..{fmt(max(b))}) | "
            f"{fmt(mm)} ({fmt(min(m))}..{fmt(max(m))}) | {unit} | {ratio:.2f}x | {verdict} |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "default"))
    ap.add_argument("--runs", type=int, default=5, help="runs of each side of a row (default 5)")
    ap.add_argument("--no-mpi4py", action="store_true", help="skip the mpi4py.futures rows")
    ap.add_argument("--filter", help="only the rows whose name matches this regex")
    args = ap.parse_args()
    bench = Path(args.build_dir) / "bench"
    tiny, hello = str(bench / "mpi_tiny"), str(bench / "mpi_hello")
    for b in (tiny, hello):
        if not Path(b).exists():
            sys.exit(f"{b} is missing: cmake --build {args.build_dir} --target mpi_tiny mpi_hello")
    m3 = mpirun(3)
    turns = run([tiny, "local", "0", "calibrate"])[0]

    rows = [
        ("tiny map: Pool::map(inc, 2,000,000 ints)", "tasks/s", True, 0.5, "local Pool(2)",
         lambda: rate([tiny, "local", "2000000", "map"]),
         lambda: rate(m3 + [tiny, "mpi", "2000000", "map"]), None),
        ("tiny async: 20,000 apply_async(inc, x), then get", "tasks/s", True, 0.5, "local Pool(2)",
         lambda: rate([tiny, "local", "20000", "async"]),
         lambda: rate(m3 + [tiny, "mpi", "20000", "async"]), None),
        ("1 ms tasks: Pool::map over 400 tasks of ~1 ms CPU", "tasks/s", True, 0.9,
         "2 local workers",
         lambda: rate([tiny, "local", "400", "spin", turns]),
         lambda: rate(m3 + [tiny, "mpi", "400", "spin", turns]), None),
    ]
    note = ""
    if args.no_mpi4py:
        note = "mpi4py rows skipped (--no-mpi4py)"
    elif not has_mpi4py():
        note = f"mpi4py rows skipped: {PYTHON} has no mpi4py (apt-get install python3-mpi4py)"
    else:
        script = str(ROOT / "bench" / "mpi4py_map.py")
        py = m3 + [PYTHON, "-m", "mpi4py.futures", script]
        for n, runs in ((1000, None), (100000, 3)):
            rows.append((f"map of {n:,} tiny tasks vs mpi4py.futures", "tasks/s", True, 20,
                         "MPIPoolExecutor.map",
                         lambda n=n: rate(py + [str(n)]),
                         lambda n=n: rate(m3 + [tiny, "mpi", str(n), "map"]), runs))
        rows.append(("map of 100,000 tiny tasks vs mpi4py.futures, chunksize 12,500", "tasks/s",
                     True, None, "MPIPoolExecutor.map",
                     lambda: rate(py + ["100000", "12500"]),
                     lambda: rate(m3 + [tiny, "mpi", "100000", "map"]), None))
    rows += [
        ("startup: mpirun -n 3 to the first result of a one-task map", "s", False, None,
         "bare MPI program (whole run)",
         lambda: startup(m3 + [hello], False),
         lambda: startup(m3 + [tiny, "mpi", "1", "first"], True), None),
        ("startup: the whole mpirun -n 3 of that one-task map", "s", False, None,
         "bare MPI program (whole run)",
         lambda: startup(m3 + [hello], False),
         lambda: startup(m3 + [tiny, "mpi", "1", "first"], False), None),
    ]
    if args.filter:
        rows = [r for r in rows if re.search(args.filter, r[0])]
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = measure(rows, args.runs)
    load_after = os.getloadavg()
    print(f"Measured {started}, {args.runs} runs a side (mpi4py 100,000 chunksize 1: 3), "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, "
          f"{os.cpu_count()} cores; ~1 ms = {turns} loop turns.")
    if note:
        print(note)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
