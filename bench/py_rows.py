"""The registry of bench/py_bench.py's rows and what every row uses (the rows live in py_bench.py
and py_bench_services.py; both register here, so that the table is one whichever file runs)."""

import multiprocessing
import time

ROWS = {}


def row(name):
    """Registers a workload under a row name shared with mp_bench."""

    def register(fn):
        if name in ROWS:
            raise SystemExit(f"py_bench: row {name} registered twice")
        ROWS[name] = fn
        return fn

    return register


def timed(once, iters, warmup):
    """Runs once() warmup times untimed, then iters times; returns the seconds of the latter."""
    for _ in range(warmup):
        once()
    t0 = time.perf_counter()
    for _ in range(iters):
        once()
    return time.perf_counter() - t0


# The fork start method for every row but the start-method rows (which take their own context),
# as the C++ rows do: both sides pay the same start cost.
FORK = multiprocessing.get_context("fork")


