#!/usr/bin/python3
# A Python manager server (Python's own BaseManager, as in Python's docs, "Using a remote
# manager") whose queue of jobs and dict of results a C++ program uses through
# <multiproc/py_manager.hpp> (examples/py_manager_client.cpp; docs/py_manager.md).
#   python3 python_manager_server.py HOST:PORT AUTHKEY     (port 0: any free port)
import queue
import sys
from multiprocessing.managers import BaseManager, DictProxy

jobs, results = queue.Queue(), {}
for n in range(1, 21):
    jobs.put(n)


class QueueManager(BaseManager):
    pass


QueueManager.register('get_queue', callable=lambda: jobs)
QueueManager.register('get_dict', callable=lambda: results, proxytype=DictProxy)

host, port = sys.argv[1].rsplit(':', 1)
m = QueueManager(address=(host, int(port)), authkey=sys.argv[2].encode())
server = m.get_server()
print('serving at %s:%d' % server.address, flush=True)
try:
    server.serve_forever()  # until a client calls shutdown (Python's server then exits)
finally:
    print('server saw', len(results), 'results; 7 ->', results.get(7), flush=True)
