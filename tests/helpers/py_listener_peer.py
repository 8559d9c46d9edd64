"""Python end of multiproc's Listener/Client interoperability tests (tests/listener_test.cpp).

Usage: python3 py_listener_peer.py listen|client ADDRESS KEY
ADDRESS is "host:port" (TCP; port 0 picks one), "@name" (abstract) or a path.
KEY is the authkey in hex, or "-" for none.
listen: prints the bound address ("host:port" or the path) on a line of stdout, accepts one
        client, echoes every message with send_bytes until EOF, exits 0.
client: connects, echoes every message until EOF, exits 0.
An AuthenticationError exits 3 (after printing "auth-failed").
"""
import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener


def parse(address):
    if address.startswith("@"):
        return "\0" + address[1:]
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit() and "/" not in address:
        return (host.strip("[]"), int(port))
    return address


def echo(conn):
    while True:
        try:
            msg = conn.recv_bytes()
        except EOFError:
            return 0
        conn.send_bytes(msg)


def main():
    mode, address, key = sys.argv[1], parse(sys.argv[2]), sys.argv[3]
    authkey = None if key == "-" else bytes.fromhex(key)
    try:
        if mode == "listen":
            family = "AF_INET" if isinstance(address, tuple) else "AF_UNIX"
            with Listener(address, family=family, authkey=authkey) as listener:
                bound = listener.address
                print(f"{bound[0]}:{bound[1]}" if isinstance(bound, tuple) else bound, flush=True)
                with listener.accept() as conn:
                    return echo(conn)
        with Client(address, authkey=authkey) as conn:
            return echo(conn)
    except AuthenticationError:
        print("auth-failed", flush=True)
        return 3


if __name__ == "__main__":
    sys.exit(main())
