"""The mpi4py.futures side of docs/bench.md's MPI rows: MPIPoolExecutor.map over N tiny tasks.

    mpirun -n 3 /usr/bin/python3 -m mpi4py.futures bench/mpi4py_map.py N [CHUNKSIZE]

Rank 0 runs this script, ranks 1 and 2 are mpi4py's workers (as bench/mpi_tiny's "mpi" mode).
CHUNKSIZE is MPIPoolExecutor.map's (default 1: one task per item, mpi4py's default). Prints
"mpi4py map <N> <seconds> <tasks/s>": the median of the timed rounds after a warm-up round (at
least 3, more until 0.5 s have passed; a single round when one takes over a second).
Needs Debian's python3-mpi4py (apt-get install python3-mpi4py).
"""

import sys
import time

from mpi4py.futures import MPIPoolExecutor


def inc(x):
    return x + 1


def main():
    n = int(sys.argv[1])
    chunksize = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    items = list(range(n))
    with MPIPoolExecutor() as ex:
        warm = items if n <= 10000 else items[:10000]
        if list(ex.map(inc, warm, chunksize=chunksize))[-1] != warm[-1] + 1:
            sys.exit("wrong result")
        times = []
        start = time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - start < 0.5 and len(times) < 500):
            t0 = time.perf_counter()
            out = list(ex.map(inc, items, chunksize=chunksize))
            times.append(time.perf_counter() - t0)
            if out[-1] != n:
                sys.exit("wrong result")
            if times[-1] > 1.0:
                break
    median = sorted(times)[len(times) // 2]
    print(f"mpi4py map {n} {median:.4f} {n / median:.0f}")


if __name__ == "__main__":
    main()
