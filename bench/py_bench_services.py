"""bench/py_bench.py's rows of Python's services: Listener/Client, managers (a child's and a
Python client's DictProxy), and pickle. Registered on import (py_rows.row); run as a script with
--dict-client, it is the client process of manager_py_dict_ops."""

import sys
import time

from py_rows import FORK, row
from py_rows import timed as _timed


# ---- Listener/Client connect + authenticate (bench/rows/listener.cpp) ----


def _connect_loop(address, key, n):
    from multiprocessing.connection import Client
    for _ in range(n):
        with Client(address, authkey=key) as c:
            c.send_bytes(b"h")


@row("listener_connect_auth")
def listener_connect_auth(iters, warmup):
    from multiprocessing.connection import Listener
    key = b"k" * 32
    with Listener(("127.0.0.1", 0), backlog=64, authkey=key) as listener:
        p = FORK.Process(target=_connect_loop, args=(listener.address, key, warmup + iters))
        p.start()

        def one():
            with listener.accept() as c:
                if len(c.recv_bytes()) != 1:
                    raise RuntimeError("wrong hello")

        seconds = _timed(one, iters, warmup)
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"client exit code {p.exitcode}")
    return seconds


# ---- Manager dict set + get from a child (bench/rows/managers.cpp) ----


def _dict_loop(d, report, warmup, iters):
    total = 0
    for i in range(warmup):
        d[i & 1023] = i
        total += d[i & 1023]
    report.send_bytes(b"w")
    for i in range(iters):
        d[i & 1023] = i
        total += d[i & 1023]
    report.send_bytes(b"d" if total >= 0 else b"x")


@row("manager_dict_setget")
def manager_dict_setget(iters, warmup):
    with FORK.Manager() as m:
        d = m.dict()
        reader, writer = FORK.Pipe(False)
        p = FORK.Process(target=_dict_loop, args=(d, writer, warmup, iters))
        p.start()
        writer.close()
        reader.recv_bytes()
        t0 = time.perf_counter()
        done = reader.recv_bytes()
        seconds = time.perf_counter() - t0
        p.join()
        if p.exitcode != 0 or done != b"d":
            raise RuntimeError(f"child exit code {p.exitcode}")
    return seconds


# ---- pickle.dumps / pickle.loads with CPython's C pickler (bench/rows/pickle.cpp) ----


def _pickle_row(name, make, decode):
    import pickle

    @row(name)
    def run(iters, warmup):
        data = make()
        if decode:
            blob = pickle.dumps(data, protocol=4)
            return _timed(lambda: pickle.loads(blob), iters, warmup)
        return _timed(lambda: pickle.dumps(data, protocol=4), iters, warmup)

    return run


def _pickle_rows():
    ints = lambda: list(range(1_000_000))  # noqa: E731
    dict_ = lambda: {f"k{i}": 0.5 * i for i in range(100_000)}  # noqa: E731
    _pickle_row("pickle_dumps_list_1M", ints, False)
    _pickle_row("pickle_loads_list_1M", ints, True)
    _pickle_row("pickle_dumps_dict_100k", dict_, False)
    _pickle_row("pickle_loads_dict_100k", dict_, True)


_pickle_rows()


# ---- A Python client's DictProxy set + get against a manager server (rows/manager_python.cpp) ----


def dict_client(where, hexkey, warmup, iters):
    """The client of manager_py_dict_ops: prints the seconds of `iters` timed pairs."""
    from multiprocessing.managers import BaseManager, DictProxy

    class DictManager(BaseManager):
        pass

    DictManager.register("get_dict", proxytype=DictProxy)
    host, port = where.rsplit(":", 1)
    m = DictManager(address=(host, int(port)), authkey=bytes.fromhex(hexkey))
    m.connect()
    d = m.get_dict()
    total = 0
    for i in range(warmup):
        d[i & 1023] = i
        total += d[i & 1023]
    t0 = time.perf_counter()
    for i in range(iters):
        d[i & 1023] = i
        total += d[i & 1023]
    print(time.perf_counter() - t0 if total >= 0 else -1, flush=True)


_SERVED = {}


def _served_dict():
    return _SERVED


@row("manager_py_dict_ops")
def manager_py_dict_ops(iters, warmup):
    import subprocess
    from multiprocessing.managers import BaseManager, DictProxy

    class DictManager(BaseManager):
        pass

    DictManager.register("get_dict", callable=_served_dict, proxytype=DictProxy)
    m = DictManager(address=("127.0.0.1", 0), authkey=b"bench", ctx=FORK)
    m.start()
    try:
        host, port = m.address
        out = subprocess.run([sys.executable, __file__, "--dict-client", f"{host}:{port}",
                              b"bench".hex(), str(warmup), str(iters)],
                             check=True, capture_output=True, text=True).stdout
    finally:
        m.shutdown()
    return float(out)


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--dict-client":
    dict_client(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
