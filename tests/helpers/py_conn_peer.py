"""Python end of multiproc's wire-compatibility tests (tests/connection_test.cpp).

Usage: python3 py_conn_peer.py FD
FD is an inherited AF_UNIX stream socket. The peer wraps it in Python's own
multiprocessing.connection.Connection and echoes every message back with
send_bytes until the other end closes, then exits 0. A message b"__quit__"
ends the loop early.
"""
import sys
from multiprocessing.connection import Connection


def main() -> int:
    conn = Connection(int(sys.argv[1]))
    try:
        while True:
            try:
                msg = conn.recv_bytes()
            except EOFError:
                return 0
            if msg == b"__quit__":
                return 0
            conn.send_bytes(msg)
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
