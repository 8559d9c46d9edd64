"""Feeds batches of numbers to examples/python_feeds_cpp (a C++ Pool behind a Listener) and
checks the Collatz step counts it sends back against Python's own.

Usage: python3 feed.py HOST:PORT KEY
"""
import sys
from multiprocessing.connection import Client


def collatz_steps(n):
    steps = 0
    while n > 1:
        n = 3 * n + 1 if n % 2 else n // 2
        steps += 1
    return steps


def main():
    host, _, port = sys.argv[1].rpartition(":")
    with Client((host, int(port)), authkey=sys.argv[2].encode()) as conn:
        checked = 0
        for start in range(1, 2001, 250):
            batch = list(range(start, start + 250))
            conn.send(batch)
            results = conn.recv()
            expected = [collatz_steps(n) for n in batch]
            if results != expected:
                print("wrong results for the batch from %d: %r" % (start, results[:5]))
                return 1
            checked += len(batch)
        conn.send(None)
    print("python checked %d results" % checked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
