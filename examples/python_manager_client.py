# The Python side of examples/python_manager_server.cpp: Python's own multiprocessing.managers,
# as in Python's docs ("Using a remote manager"), against a C++ server.
#   python3 python_manager_client.py HOST:PORT AUTHKEY
import sys
import time
from multiprocessing.connection import Client
from multiprocessing.managers import BaseManager, DictProxy, dispatch


class QueueManager(BaseManager):
    pass


QueueManager.register('get_queue')
QueueManager.register('get_dict', proxytype=DictProxy)

host, port = sys.argv[1].rsplit(':', 1)
authkey = sys.argv[2].encode()
m = QueueManager(address=(host, int(port)), authkey=authkey)
m.connect()
jobs, results = m.get_queue(), m.get_dict()
for n in range(10):
    jobs.put(n)
while len(results) < 10:  # the C++ server squares them
    time.sleep(0.01)
print('squares:', [results[n] for n in range(10)], flush=True)
# Stop the server (what BaseManager.shutdown sends to a server it started).
dispatch(Client((host, int(port)), authkey=authkey), None, 'shutdown')
