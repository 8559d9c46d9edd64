#!/usr/bin/env python3
"""Runs every benchmark row side by side: multiproc, the raw-syscall baseline, Python.

    python3 bench/run.py [--build-dir build/default] [--runs 5] [--quick] [--filter REGEX]
                         [--target-time 0.4] [--markdown out.md] [--json out.json]

The C++ implementations (multiproc, raw, ...) live in the mp_bench binary of the build
directory (build it first: cmake --build build/default --target mp_bench); the Python ones in
bench/py_bench.py. Every (row, implementation) is first calibrated: its iteration count is
scaled until one run takes about --target-time seconds (that calibration run is also a
warm-up). Then --runs rounds follow; each round runs every implementation of every row once,
in a rotating order, so machine noise falls on all of them alike. Each run is a fresh process
that does its own untimed warm-up iterations before the timed ones.

The table gives median, min and max per implementation, and the ratio of multiproc's median to
each other implementation's median, in the row's own unit: for a time (us, ms) lower is
better, for a rate (msg/s) higher is better. A row whose multiproc implementation does not
exist in mp_bench yet shows "n/a (not built yet)".
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PRIMARY = "multiproc"
NOT_BUILT = "n/a (not built yet)"


class RunError(Exception):
    pass


def run_json(cmd, timeout):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunError(f"timed out after {timeout:.0f} s: {shlex.join(cmd)}")
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise RunError(f"exit {out.returncode}: {tail}")
    text = out.stdout.strip()
    if not text:
        raise RunError(f"no output from {shlex.join(cmd)}")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise RunError(f"not JSON: {text[-200:]!r}")


class Bench:
    """The implementations of every row, and how to run one of them once."""

    def __init__(self, mp_bench, python):
        self.mp_bench = mp_bench
        self.python = python
        self.py_bench = os.path.join(HERE, "py_bench.py")
        cpp = run_json([mp_bench, "--list"], 60)
        py = run_json([python, self.py_bench, "--list"], 60)
        self.rows = []
        py_rows = {r["name"] for r in py["rows"]}
        for r in cpp["rows"]:
            r["runners"] = {impl: "cpp" for impl in r["impls"]}
            if r["name"] in py_rows:
                r["runners"]["python"] = "py"
            self.rows.append(r)
        known = {r["name"] for r in self.rows}
        for name in sorted(py_rows - known):
            print(f"warning: py_bench.py row {name} has no spec in mp_bench; skipped",
                  file=sys.stderr)

    def command(self, row, impl, iters):
        if row["runners"][impl] == "py":
            return [self.python, self.py_bench, "--row", row["name"], "--iters", str(iters)]
        return [self.mp_bench, "--row", row["name"], "--impl", impl, "--iters", str(iters)]

    def run(self, row, impl, iters, timeout):
        res = run_json(self.command(row, impl, iters), timeout)
        seconds = float(res["seconds"])
        if seconds <= 0:
            raise RunError("non-positive time")
        return seconds

    @staticmethod
    def value(row, seconds, iters):
        if row["kind"] == "latency":
            return seconds / iters * row["scale"]
        return iters / seconds


def calibrate(bench, row, impl, target, timeout):
    """Iterations for one run of about `target` seconds (the runs here double as warm-up)."""
    iters = max(1, int(row["probe_iters"]))
    for _ in range(8):
        seconds = bench.run(row, impl, iters, timeout)
        want = max(1, math.ceil(iters * target / seconds))
        if seconds >= target / 4:
            return want
        iters = min(want, iters * 20)
    return iters


def fmt(v):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    mag = abs(v)
    if mag >= 1e6:
        return f"{v:.3g}".replace("e+0", "e").replace("e+", "e")
    if mag >= 100:
        return f"{v:.0f}"
    if mag >= 10:
        return f"{v:.1f}"
    if mag >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def goal_text(row, ratios):
    g = row["goal"]
    if g["direction"] == "none" or not g["versus"]:
        return ""
    op = "<=" if g["direction"] == "at_most" else ">="
    r = ratios.get(g["versus"])
    if r is None:
        return f"{op} {g['bound']:.2f}x {g['versus']}: n/a"
    ok = r <= g["bound"] if g["direction"] == "at_most" else r >= g["bound"]
    return f"{op} {g['bound']:.2f}x {g['versus']}: {'met' if ok else 'NOT met'}"


def build_table(bench, results, iters_of, errors):
    """Rows of cells: row, impl, median, min, max, unit, MB/s, multiproc/this, goal."""
    header = ["row", "implementation", "median", "min", "max", "unit", "MB/s (median)",
              "multiproc / this", "goal"]
    table = []
    for row in bench.rows:
        impls = [PRIMARY] + [i for i in row["runners"] if i != PRIMARY]
        med = {}
        for impl in impls:
            vals = results.get((row["name"], impl), [])
            if vals:
                med[impl] = statistics.median(vals)
        ratios = {impl: med[PRIMARY] / med[impl]
                  for impl in med if impl != PRIMARY and PRIMARY in med and med[impl] > 0}
        first = True
        for impl in impls:
            key = (row["name"], impl)
            vals = results.get(key, [])
            cells = [row["name"] if first else "", impl]
            if impl not in row["runners"]:
                cells += [NOT_BUILT, "", "", row["unit"], "", "", ""]
            elif key in errors and not vals:
                cells += ["error: " + errors[key], "", "", row["unit"], "", "", ""]
            else:
                m = statistics.median(vals)
                mbs = fmt(m * row["bytes_per_iter"] / 1e6) if row["kind"] == "throughput" else ""
                ratio = f"{ratios[impl]:.2f}x" if impl in ratios else ""
                cells += [fmt(m), fmt(min(vals)), fmt(max(vals)), row["unit"], mbs, ratio, ""]
            if first:
                cells[-1] = goal_text(row, ratios)
            table.append(cells)
            first = False
    return header, table


def render_text(header, table):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *table)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "-" * len(line)]
    for cells in table:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip())
    return "\n".join(out)


def render_markdown(header, table):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cells in table:
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out)


def machine_notes(build_dir):
    build_type = compiler = "?"
    cache = os.path.join(build_dir, "CMakeCache.txt")
    if os.path.exists(cache):
        with open(cache) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    build_type = line.split("=", 1)[1].strip() or "(none)"
                elif line.startswith("CMAKE_CXX_COMPILER:"):
                    compiler = os.path.basename(os.path.realpath(line.split("=", 1)[1].strip()))
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "build_type": build_type,
        "compiler": compiler,
    }


def default_python():
    """Debian's Python when present: the baseline as Debian installs it, with python3-joblib."""
    debian = "/usr/bin/python3"
    return debian if os.access(debian, os.X_OK) else (sys.executable or "python3")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--build-dir", default="build/default",
                    help="CMake build directory holding bench/mp_bench (default build/default, "
                         "relative to the repository root)")
    ap.add_argument("--runs", type=int, help="measured runs per implementation (default 5; "
                                              "--quick: 1)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: short runs (0.05 s) and one round unless --runs is given")
    ap.add_argument("--filter", default="", help="only rows whose name matches this regex")
    ap.add_argument("--target-time", type=float,
                    help="seconds per run after calibration (default 0.4; --quick: 0.05)")
    ap.add_argument("--markdown", help="also write the table, command and notes here")
    ap.add_argument("--json", help="also write every measured value here")
    ap.add_argument("--python", default=default_python(),
                    help="the Python whose multiprocessing is measured (default: Debian's "
                         "/usr/bin/python3, which sees Debian's python3-joblib, else this one)")
    args = ap.parse_args()
    runs = args.runs if args.runs is not None else (1 if args.quick else 5)
    target = args.target_time if args.target_time is not None else (0.05 if args.quick else 0.4)
    if runs < 1 or target <= 0:
        ap.error("--runs and --target-time must be positive")
    if not args.quick and runs < 5:
        print(f"note: {runs} runs; medians need at least 5 to mean much", file=sys.stderr)

    build_dir = args.build_dir if os.path.isabs(args.build_dir) \
        else os.path.join(ROOT, args.build_dir)
    mp_bench = os.path.join(build_dir, "bench", "mp_bench")
    if not os.access(mp_bench, os.X_OK):
        sys.exit(f"run.py: {mp_bench} not found; build it first:\n"
                 f"  cmake --build {args.build_dir} --target mp_bench")
    notes = machine_notes(build_dir)
    if notes["build_type"] not in ("Release", "RelWithDebInfo"):
        print(f"warning: {args.build_dir} is a {notes['build_type']} build; numbers from it "
              "mean little", file=sys.stderr)

    try:
        bench = Bench(mp_bench, args.python)
    except RunError as e:
        sys.exit(f"run.py: cannot list the rows: {e}")
    pattern = re.compile(args.filter)
    bench.rows = [r for r in bench.rows if pattern.search(r["name"])]
    if not bench.rows:
        sys.exit(f"run.py: no row matches {args.filter!r}")
    timeout = max(120.0, 40 * target)
    command = shlex.join(["python3", os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd())]
                         + sys.argv[1:])
    load_before = os.getloadavg()

    iters_of, errors, results = {}, {}, {}
    for row in bench.rows:
        for impl in row["runners"]:
            key = (row["name"], impl)
            try:
                iters_of[key] = calibrate(bench, row, impl, target, timeout)
            except RunError as e:
                errors[key] = str(e)
            print(f"calibrated {row['name']}/{impl}: "
                  f"{iters_of.get(key, 'failed: ' + errors.get(key, ''))} iterations",
                  file=sys.stderr)

    for r in range(runs):
        for row in bench.rows:
            impls = [i for i in row["runners"] if (row["name"], i) in iters_of]
            if impls:
                k = r % len(impls)
                impls = impls[k:] + impls[:k]
            for impl in impls:
                key = (row["name"], impl)
                try:
                    s = bench.run(row, impl, iters_of[key], timeout)
                    results.setdefault(key, []).append(bench.value(row, s, iters_of[key]))
                except RunError as e:
                    errors[key] = str(e)
        print(f"round {r + 1}/{runs} done", file=sys.stderr)
    load_after = os.getloadavg()

    header, table = build_table(bench, results, iters_of, errors)
    about = (f"{notes['date']}; Linux {notes['kernel']}, {notes['cpus']} CPUs, load average "
             f"{load_before[0]:.2f} before / {load_after[0]:.2f} after; {notes['compiler']} "
             f"{notes['build_type']}; Python {notes['python']}; {runs} run{'s' if runs != 1 else ''} of ~{target:g} s "
             f"per implementation, interleaved")
    legend = ("multiproc / this = multiproc's median divided by this implementation's median, "
              "in the row's unit: for us/ms (time) lower is better, so 1.10x means multiproc "
              "takes 10% longer; for msg/s (rate) higher is better, so 0.90x means multiproc "
              "reaches 90% of this rate.")
    print()
    print(render_text(header, table))
    print()
    print(legend)
    print(about)
    print(f"command: {command}")
    for key, err in sorted(errors.items()):
        print(f"error in {key[0]}/{key[1]}: {err}", file=sys.stderr)

    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(render_markdown(header, table) + "\n\n")
            f.write(legend + "\n\n")
            f.write(about + ".\n\n")
            f.write(f"Command: `{command}`\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"notes": notes, "command": command, "runs": runs, "target_time": target,
                       "iterations": {f"{k[0]}/{k[1]}": v for k, v in iters_of.items()},
                       "values": {f"{k[0]}/{k[1]}": v for k, v in results.items()},
                       "errors": {f"{k[0]}/{k[1]}": v for k, v in errors.items()}}, f, indent=1)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
