"""Python end of mp::pickle's interoperability tests (tests/pickle_python_test.cpp).

Usage: python3 py_pickle_peer.py listen|client ADDRESS KEY PROTOCOL
ADDRESS is "host:port" (port 0 picks one); KEY the authkey in hex. listen prints the bound
address on a line of stdout and accepts one client; client connects. Then, until EOF, each
request is a pickle (read with Connection.recv, which unpickles as multiprocessing does):

  (table, i, value)  checks that value is exactly TABLES[table][i] (types included: a
                     bytearray is not bytes, a tuple not a list, True not 1) and answers
                     (ok, repr(value), TABLES[table][i]) pickled at PROTOCOL.
  ("bad",)           answers with a malformed pickle, then a pickle of os.system (a global a
                     decoder must refuse), then the pickle of "still here".
Answers at protocol 4 go through Connection.send (Python's own path); the others through
send_bytes(pickle.dumps(obj, protocol=PROTOCOL)). The shapes here mirror the C++ test's.
"""
import collections
import os
import pickle
import sys
from multiprocessing.connection import Client, Listener

SHARED = [1, "s"]

TABLES = {
    "shapes": [
        None, True, False,
        0, 255, 256, 65536, -1, -129, 2**31, -2**31 - 1, 2**63 - 1, -2**63,
        2**64 - 1, -(2**100),
        1.5, -0.0, float("inf"), 1e300,
        "", "h\u00e9llo \u2603", "x" * 300,
        b"", b"\x00\xff" * 200, bytearray(b"ba"), bytearray(),
        [], [1, [2, [3]]], list(range(2500)),
        (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, "four"),
        {}, {"a": 1, 2: [3.5, None]}, {i: str(i) for i in range(1500)},
        set(), {1, 2}, frozenset(), frozenset({"f"}),
        collections.OrderedDict([("z", 1), ("a", 2)]),
        ValueError("bad", 3), KeyError("k"),
        [SHARED, SHARED],
    ],
    "typed": [
        {"a": 1.5, "b": -2.0},
        (7, "seven", [1.0, 2.0]),
        [b"x", b""],
        {3, 4},
        {"k": [(1, "one")]},
    ],
}


def same(a, b):
    """Equal values of exactly the same types, all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, BaseException):
        return same(a.args, b.args)
    if isinstance(a, float) and a != a:
        return b != b
    if isinstance(a, float):
        return a == b and str(a) == str(b)  # -0.0 is not 0.0 here
    return a == b


def answer(conn, obj, protocol):
    if protocol == 4:
        conn.send(obj)
    else:
        conn.send_bytes(pickle.dumps(obj, protocol=protocol))


def serve(conn, protocol):
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return 0
        if request == ("bad",):
            conn.send_bytes(b"\x80\x04\x95garbage")
            conn.send_bytes(pickle.dumps(os.system, protocol=protocol))
            answer(conn, "still here", protocol)
            continue
        table, i, value = request
        want = TABLES[table][i]
        ok = same(value, want)
        if ok and table == "shapes" and value is not None and want is TABLES["shapes"][-1]:
            ok = value[0] is value[1]  # the shared list arrived as one list
        answer(conn, (ok, repr(value)[:200], want), protocol)


def main():
    mode, address, key, protocol = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    host, _, port = address.rpartition(":")
    address = (host, int(port))
    authkey = bytes.fromhex(key)
    if mode == "listen":
        with Listener(address, authkey=authkey) as listener:
            print(f"{listener.address[0]}:{listener.address[1]}", flush=True)
            with listener.accept() as conn:
                return serve(conn, protocol)
    with Client(address, authkey=authkey) as conn:
        return serve(conn, protocol)


if __name__ == "__main__":
    sys.exit(main())
