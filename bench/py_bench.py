#!/usr/bin/env python3
"""The "python" implementation of each benchmark row: Python's multiprocessing, as installed.

Same command line and output as mp_bench (bench/harness.cpp), so bench/run.py drives both:

    py_bench.py --list                               the rows implemented here, as JSON
    py_bench.py --row NAME --iters N [--warmup W]    one run; one JSON line on stdout

Each row is a function registered with @row(name) (bench/py_rows.py; the rows of Python's
services, Listener, managers and pickle, are in bench/py_bench_services.py): it sets up (children, pipes), runs `warmup`
untimed iterations, times exactly `iters` iterations with time.perf_counter() and returns those
seconds. The protocols match the C++ rows line for line (see bench/rows/*.cpp). Standard
library only.
"""

import argparse
import json
import multiprocessing
import sys
import time

from py_rows import FORK, ROWS, row
from py_rows import timed as _timed

# ---- Pipe round trip, 8 bytes ----

STOP = b"stop"  # any length other than 8 ends the echo loop


def _echo(conn, parent_end):
    parent_end.close()
    while True:
        msg = conn.recv_bytes()
        if len(msg) != 8:
            return
        conn.send_bytes(msg)


@row("pipe_rtt_8B")
def pipe_rtt(iters, warmup):
    a, b = FORK.Pipe()
    p = FORK.Process(target=_echo, args=(b, a))
    p.start()
    b.close()
    msg = b"\x01" * 8
    send, recv = a.send_bytes, a.recv_bytes
    for _ in range(warmup):
        send(msg)
        if recv() != msg:
            raise RuntimeError("wrong echo")
    t0 = time.perf_counter()
    for _ in range(iters):
        send(msg)
        if recv() != msg:
            raise RuntimeError("wrong echo")
    seconds = time.perf_counter() - t0
    send(STOP)
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"echo child exit code {p.exitcode}")
    a.close()
    return seconds


# ---- Connection throughput, one way ----


def _sender(conn, parent_end, size, warmup, iters):
    parent_end.close()
    msg = b"x" * size
    send = conn.send_bytes
    for _ in range(warmup):
        send(msg)
    conn.recv_bytes()  # go
    for _ in range(iters):
        send(msg)
    conn.close()


def _stream(size, iters, warmup):
    a, b = FORK.Pipe()
    p = FORK.Process(target=_sender, args=(b, a, size, warmup, iters))
    p.start()
    b.close()
    buf = bytearray(size)
    recv_into = a.recv_bytes_into
    for _ in range(warmup):
        if recv_into(buf) != size:
            raise RuntimeError("short message")
    a.send_bytes(b"g")
    t0 = time.perf_counter()
    for _ in range(iters):
        if recv_into(buf) != size:
            raise RuntimeError("short message")
    seconds = time.perf_counter() - t0
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"sender child exit code {p.exitcode}")
    a.close()
    return seconds


@row("conn_throughput_64B")
def throughput_small(iters, warmup):
    return _stream(64, iters, warmup)


@row("conn_throughput_1MiB")
def throughput_large(iters, warmup):
    return _stream(1 << 20, iters, warmup)


# ---- Process start+join, fork start method ----


def _noop():
    pass


@row("process_fork_start_join")
def fork_start_join(iters, warmup):
    def once():
        p = FORK.Process(target=_noop)
        p.start()
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"child exit code {p.exitcode}")

    return _timed(once, iters, warmup)


# ---- Process start+join, spawn and forkserver start methods (bench/rows/process.cpp) ----


def _start_join_rows():
    for method in ("spawn", "forkserver"):
        ctx = multiprocessing.get_context(method)

        def start_join(iters, warmup, ctx=ctx, method=method):
            def once():
                p = ctx.Process(target=_noop)
                p.start()
                p.join()
                if p.exitcode != 0:
                    raise RuntimeError(f"{method} child exit code {p.exitcode}")

            for _ in range(warmup):  # the first one also starts the forkserver
                once()
            t0 = time.perf_counter()
            for _ in range(iters):
                once()
            return time.perf_counter() - t0

        row(f"process_{method}_start_join")(start_join)


_start_join_rows()


# ---- Shared state: Lock, a counter under its lock, Event ping-pong (bench/rows/shared_state.cpp) ----


@row("lock_uncontended")
def lock_uncontended(iters, warmup):
    lock = FORK.Lock()
    acquire, release = lock.acquire, lock.release
    for _ in range(warmup):
        acquire()
        release()
    t0 = time.perf_counter()
    for _ in range(iters):
        acquire()
        release()
    return time.perf_counter() - t0


def _incrementer(v, warmup, n, go, done):
    lock = v.get_lock()
    for _ in range(warmup):
        with lock:
            v.value += 1
    go.wait()
    for _ in range(n):
        with lock:
            v.value += 1
    done.put(1)


@row("counter_2proc")
def counter_2proc(iters, warmup):
    v = FORK.Value("i", 0)
    go = FORK.Event()
    done = FORK.SimpleQueue()
    halves = (iters // 2, iters - iters // 2)
    ps = [FORK.Process(target=_incrementer, args=(v, warmup // 2, h, go, done)) for h in halves]
    for p in ps:
        p.start()
    t0 = time.perf_counter()
    go.set()
    done.get()
    done.get()
    seconds = time.perf_counter() - t0
    for p in ps:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"incrementer exit code {p.exitcode}")
    if v.value != iters + (warmup // 2) * 2:
        raise RuntimeError("wrong count")
    return seconds


def _pong(ping, pong, total):
    for _ in range(total):
        ping.wait()
        ping.clear()
        pong.set()


@row("event_pingpong")
def event_pingpong(iters, warmup):
    ping, pong = FORK.Event(), FORK.Event()
    p = FORK.Process(target=_pong, args=(ping, pong, warmup + iters))
    p.start()

    def once():
        ping.set()
        pong.wait()
        pong.clear()

    seconds = _timed(once, iters, warmup)
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"ping-pong child exit code {p.exitcode}")
    return seconds


# ---- Queues (bench/rows/queues.cpp): P producers -> C consumers, then a ping-pong ----
#
# The protocol of the C++ rows: the consumers and producers are started and wait for a go
# event; the clock starts when it is set. Producers put iters/P items each, then C stop items
# (length 1); a consumer ends after P stop items and reports how many real items it took; the
# clock stops when all C have reported. Queue is bounded to the capacity the C++ rows give
# (1024 small or 16 large items); SimpleQueue is unbounded. No warm-up, as in the C++ rows.

_QUEUE_STOP = b"s"


def _q_producer(q, go, n, stops, size):
    item = b"x" * size
    put = q.put
    go.wait()
    for _ in range(n):
        put(item)
    for _ in range(stops):
        put(_QUEUE_STOP)


def _q_consumer(q, done, stops):
    get = q.get
    got = seen = 0
    while seen < stops:
        if len(get()) == 1:
            seen += 1
        else:
            got += 1
    done.put(got)


def _queue_mpmc(kind, np_, nc, size, iters):
    if kind == "queue":
        q = FORK.Queue(1024 if size == 64 else 16)
    else:
        q = FORK.SimpleQueue()
    go, done = FORK.Event(), FORK.SimpleQueue()
    per = iters // np_
    ps = [FORK.Process(target=_q_consumer, args=(q, done, np_)) for _ in range(nc)]
    ps += [FORK.Process(target=_q_producer, args=(q, go, per, nc, size)) for _ in range(np_)]
    for p in ps:
        p.start()
    t0 = time.perf_counter()
    go.set()
    total = sum(done.get() for _ in range(nc))
    seconds = time.perf_counter() - t0
    for p in ps:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"queue benchmark child exit code {p.exitcode}")
    if total != per * np_:
        raise RuntimeError("queue benchmark: items lost")
    return seconds


def _queue_rows():
    for kind in ("queue", "simplequeue"):
        for label, size in (("64B", 64), ("1MiB", 1 << 20)):
            for np_, nc in ((1, 1), (2, 2)):
                name = f"{kind}_{label}_{np_}to{nc}"
                row(name)(lambda iters, warmup, k=kind, s=size, a=np_, b=nc:
                          _queue_mpmc(k, a, b, s, iters))


_queue_rows()


def _q_echo(there, back):
    while True:
        v = there.get()
        back.put(v)
        if v < 0:
            return


@row("queue_pingpong_8B")
def queue_pingpong(iters, warmup):
    there, back = FORK.Queue(), FORK.Queue()
    p = FORK.Process(target=_q_echo, args=(there, back))
    p.start()
    for i in range(warmup):
        there.put(i)
        back.get()
    t0 = time.perf_counter()
    for i in range(iters):
        there.put(i)
        if back.get() != i:
            raise RuntimeError("ping-pong: wrong item")
    seconds = time.perf_counter() - t0
    there.put(-1)
    back.get()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"ping-pong child exit code {p.exitcode}")
    return seconds


# ---- concurrent.futures and joblib (bench/rows/futures.cpp) ----


def _square(x):
    return x * x


@row("executor_submit")
def executor_submit(iters, warmup):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=FORK) as ex:
        for f in [ex.submit(_square, i & 1023) for i in range(warmup)]:
            f.result()
        t0 = time.perf_counter()
        fs = [ex.submit(_square, i & 1023) for i in range(iters)]
        total = sum(f.result() for f in fs)
        seconds = time.perf_counter() - t0
    assert total >= 0
    return seconds


@row("parallel_map")
def parallel_map(iters, warmup):
    try:
        from joblib import Parallel, delayed  # Debian's python3-joblib
    except ImportError:
        raise SystemExit("py_bench: parallel_map needs joblib (apt-get install python3-joblib; "
                         "run.py --python /usr/bin/python3)")
    Parallel(n_jobs=2)(delayed(_square)(3) for _ in range(warmup))
    xs = [i & 1023 for i in range(iters)]
    t0 = time.perf_counter()
    r = Parallel(n_jobs=2)(delayed(_square)(x) for x in xs)
    seconds = time.perf_counter() - t0
    assert len(r) == iters
    return seconds


# ---- multiprocessing.Pool (bench/rows/pool.cpp) ----
#
# Pool(2) with the fork context, made before the clock starts. pool_map_1M: maps of 1,000,000
# ints (the last one shorter) with the default chunksize; pool_apply_rtt: one
# apply_async(square, (x,)).get(); pool_imap_unordered: one imap_unordered over `iters` ints
# with chunksize=1024 (the hand-written pool's batch; Python's default of 1 is ~100x slower).
# pool_speedup_1ms has no Python implementation: its ratio is multiproc against serial C++.

_POOL_MAP_SIZE = 1_000_000


@row("pool_map_1M")
def pool_map_1m(iters, warmup):
    full = [i & 1023 for i in range(_POOL_MAP_SIZE)]

    def plan(n):
        maps = [full] * (n // _POOL_MAP_SIZE)
        if n % _POOL_MAP_SIZE:
            maps.append(full[:n % _POOL_MAP_SIZE])
        return maps

    with FORK.Pool(2) as pool:
        for xs in plan(warmup):
            if pool.map(_square, xs) != [x * x for x in xs]:
                raise RuntimeError("pool_map_1M: wrong results")
        maps = plan(iters)
        t0 = time.perf_counter()
        for xs in maps:
            last = pool.map(_square, xs)
        seconds = time.perf_counter() - t0
        if last != [x * x for x in maps[-1]]:
            raise RuntimeError("pool_map_1M: wrong results")
    return seconds


@row("pool_apply_rtt")
def pool_apply_rtt(iters, warmup):
    with FORK.Pool(2) as pool:
        for i in range(warmup):
            if pool.apply_async(_square, (i & 1023,)).get() != (i & 1023) ** 2:
                raise RuntimeError("pool_apply_rtt: wrong result")
        apply_async = pool.apply_async
        total = 0
        t0 = time.perf_counter()
        for i in range(iters):
            total += apply_async(_square, (i & 1023,)).get()
        seconds = time.perf_counter() - t0
    assert total >= 0
    return seconds


@row("pool_imap_unordered")
def pool_imap_unordered(iters, warmup):
    with FORK.Pool(2) as pool:
        sum(pool.imap_unordered(_square, [i & 1023 for i in range(warmup)], chunksize=1024))
        xs = [i & 1023 for i in range(iters)]
        t0 = time.perf_counter()
        total = 0
        count = 0
        for y in pool.imap_unordered(_square, xs, chunksize=1024):
            total += y
            count += 1
        seconds = time.perf_counter() - t0
    if count != iters or total != sum(x * x for x in xs):
        raise RuntimeError("pool_imap_unordered: wrong results")
    return seconds


import py_bench_services  # noqa: E402,F401  (its rows register on import)


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--dict-client":  # mp_bench's manager_py_dict_ops
        py_bench_services.dict_client(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                                      int(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--row")
    ap.add_argument("--impl", default="python", help="accepted for symmetry with mp_bench")
    ap.add_argument("--iters", type=int)
    ap.add_argument("--warmup", type=int)
    args = ap.parse_args()
    if args.list:
        print(json.dumps({"rows": [{"name": n, "impls": ["python"]} for n in ROWS]}))
        return 0
    if not args.row or args.row not in ROWS:
        ap.error(f"--row must be one of: {', '.join(ROWS)}")
    if args.impl != "python":
        ap.error("py_bench.py implements only --impl python")
    iters = args.iters or 100
    warmup = args.warmup if args.warmup is not None else iters // 10 + 1
    seconds = ROWS[args.row](iters, warmup)
    print(json.dumps({"row": args.row, "impl": "python", "iters": iters,
                      "warmup": warmup, "seconds": seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
