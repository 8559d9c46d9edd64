"""Python end of multiproc's Python-manager client tests (tests/py_manager_client_test.cpp).

Usage: python3 py_manager_server.py serve|fake KEY
KEY is the authkey in hex. Both modes listen at 127.0.0.1 on a free port, print "host:port" on
a line of stdout, and serve until killed (or, for serve, until a client sends shutdown).

serve: a real BaseManager server: the docs' shared get_queue / get_dict / get_list, a bounded
       queue, SyncManager's "dict", "list" and "Queue", a Maker whose make_dict returns a proxy
       ('#PROXY'), and an Inspector whose type_name(v) tells the Python type of what arrived
       (and whose fail() raises ZeroDivisionError).
fake:  a server that authenticates as Python's does and answers 'dummy', 'create', 'decref' and
       'accept_connection' properly, then answers each call on an object according to the
       method's name: "kind" ('#WHAT', 1), "triple" a 3-tuple, "garbage" bytes that are no
       pickle, "global" a pickle of os.system, "notoken" a '#PROXY' without a Token, "traceback"
       a '#TRACEBACK', "ok" ('#RETURN', 42).
"""
import os
import pickle
import queue
import sys
import threading
from multiprocessing.connection import Listener
from multiprocessing.managers import BaseManager, DictProxy, ListProxy


class Maker:
    def make_dict(self):
        return {"made": True}


class Inspector:
    def type_name(self, v):
        return type(v).__name__

    def fail(self):
        raise ZeroDivisionError("no")


def serve(authkey):
    shared_queue, bounded = queue.Queue(), queue.Queue(1)
    shared_dict, shared_list = {}, []

    class Manager(BaseManager):
        pass

    Manager.register("get_queue", callable=lambda: shared_queue)
    Manager.register("get_bounded_queue", callable=lambda: bounded)
    Manager.register("get_dict", callable=lambda: shared_dict, proxytype=DictProxy)
    Manager.register("get_list", callable=lambda: shared_list, proxytype=ListProxy)
    Manager.register("dict", dict, DictProxy)
    Manager.register("list", list, ListProxy)
    Manager.register("Queue", queue.Queue)
    Manager.register("Maker", Maker, exposed=("make_dict",),
                     method_to_typeid={"make_dict": "dict"})
    Manager.register("Inspector", Inspector)
    server = Manager(address=("127.0.0.1", 0), authkey=authkey).get_server()
    print("%s:%d" % server.address, flush=True)
    server.serve_forever()


FAKE_REPLIES = {
    "kind": lambda c: c.send(("#WHAT", 1)),
    "triple": lambda c: c.send(("#RETURN", 1, 2)),
    "garbage": lambda c: c.send_bytes(b"\x80\x04garbage"),
    "global": lambda c: c.send_bytes(pickle.dumps(("#RETURN", os.system))),
    "notoken": lambda c: c.send(("#PROXY", ((), 7))),
    "traceback": lambda c: c.send(("#TRACEBACK", "Traceback (most recent call last):\n"
                                   "  File \"x.py\", line 1\nZeroDivisionError: division by zero\n")),
    "ok": lambda c: c.send(("#RETURN", 42)),
}


def fake_client(listener):
    try:
        c = listener.accept()
    except Exception:
        return
    threading.Thread(target=fake_client, args=(listener,), daemon=True).start()
    with c:
        while True:
            try:
                ident, method, args, kwds = c.recv()
            except EOFError:
                return
            if method == "create":
                c.send(("#RETURN", ("1", tuple(FAKE_REPLIES))))
            elif method in ("dummy", "decref", "incref", "accept_connection"):
                c.send(("#RETURN", None))
            else:
                FAKE_REPLIES[method](c)


def fake(authkey):
    listener = Listener(("127.0.0.1", 0), authkey=authkey)
    print("%s:%d" % listener.address, flush=True)
    fake_client(listener)
    threading.Event().wait()


def main():
    mode, authkey = sys.argv[1], bytes.fromhex(sys.argv[2])
    {"serve": serve, "fake": fake}[mode](authkey)


if __name__ == "__main__":
    main()
