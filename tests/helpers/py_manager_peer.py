# A Python client of a multiproc ManagerServer (tests/manager_python_test.cpp): one scenario a
# run, with Python's own multiprocessing.managers, printing one line per check for the test.
#   python3 py_manager_peer.py SCENARIO HOST:PORT HEXKEY [ARG]
import os
import pickle
import sys
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from multiprocessing.managers import (BaseManager, DictProxy, ListProxy, NamespaceProxy,
                                      dispatch)


class QueueManager(BaseManager):
    pass


# The docs' remote-manager client, as it is written there.
QueueManager.register('get_queue')
QueueManager.register('get_dict', proxytype=DictProxy)
QueueManager.register('get_list', proxytype=ListProxy)
QueueManager.register('dict', proxytype=DictProxy)
QueueManager.register('Namespace', proxytype=NamespaceProxy)

scenario, where, key = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
host, port = where.rsplit(':', 1)
address = (host, int(port))


def say(*a):
    print(*a, flush=True)


def connect(authkey=key):
    m = QueueManager(address=address, authkey=authkey)
    m.connect()
    return m


def error_name(f):
    try:
        f()
    except Exception as e:
        return type(e).__module__ + '.' + type(e).__name__
    return 'no error'


SHAPES = [None, True, False, 0, 255, -1, 2**31, -2**63, 2**64 - 1, -2**100, 1.5, -0.0, 1e300,
          '', 'h\u00e9llo \u2603', 'x' * 300, b'', b'\x00\xff' * 200, [], [1, [2, [3]]],
          list(range(2500)), (), (1,), (1, 2, 3), (1, 2, 3, 4, 5), {}, {'a': 1, 2: [3]},
          {i: str(i) for i in range(1500)}, set(), {1, 2, 3}, frozenset({4}), bytearray(b'ba')]


class Hostile:
    def __reduce__(self):
        return (os.system, ('echo the server ran os.system',))


GARBAGE = {
    'pickle': b'\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7fgarbage',  # a frame far too long
    'hostile': pickle.dumps((None, 'dummy', (Hostile(),), {})),
    'notrequest': pickle.dumps([1, 2, 3]),
    'raw': b'hello',
}


def main():
    if scenario == 'queue':
        # the docs' client, unchanged
        m = QueueManager(address=address, authkey=key)
        m.connect()
        q = m.get_queue()
        q.put('hello')
        say('put', q.qsize() >= 0)
        # The C++ side takes 'hello' and puts 'back' only after this line: a get of ours before
        # it took 'hello' could win 'hello' instead.
        deadline = time.monotonic() + 60
        while q.qsize() > 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        say('taken', q.qsize() == 0)
        say('got', q.get(timeout=30))  # what the C++ side put back
        say('empty', error_name(lambda: q.get(timeout=0.05)))
        say('empty_nowait', error_name(q.get_nowait))
    elif scenario == 'dict':
        d = connect().get_dict()
        d['a'] = 1
        d['b'] = 'two'
        d[3] = [4]
        say('get', d['a'], d['b'], d[3], d.get('zz', 'default'))
        say('keys', sorted(map(str, d.keys())), len(d), 'a' in d, 'zz' in d)
        del d['b']
        say('del', len(d), 'b' in d)
        say('missing', error_name(lambda: d['zz']))
        say('missing_del', error_name(lambda: d.__delitem__('zz')))
        say('unhashable', error_name(lambda: d.__setitem__([1], 2)))
        d.update({'u': 1}, v=2)
        say('update', d['u'], d['v'], d.pop('u'), d.pop('nope', 7), d.setdefault('s', 5))
        say('items', sorted((str(k), str(v)) for k, v in d.items()))
        say('copy', d.copy() == d._getvalue(), str(d) == str(d.copy()))
        say('cpp', d['from_cpp'])  # set by the C++ side before this run
    elif scenario == 'list':
        m = connect()
        lst = m.get_list()
        lst.append(1)
        lst.extend([2, 3])
        lst += [4]
        say('list', lst[0], lst[-1], lst[1:3], lst[:], len(lst), 3 in lst, list(lst))
        lst[0] = 10
        lst.insert(0, 0)
        say('ops', lst.pop(), lst.index(10), lst.count(2), error_name(lambda: lst[99]))
        lst.remove(10)
        lst.reverse()
        say('after', lst[:], lst._getvalue())
        ns = m.Namespace(x=1)
        ns.y = 'why'
        say('namespace', ns.x, ns.y, error_name(lambda: ns.zz))
        fresh = m.dict({'k': 'v'})
        say('fresh', fresh['k'], len(fresh))
    elif scenario == 'server':
        m = connect()
        q = m.get_queue()
        conn = Client(address, authkey=key)
        say('methods', sorted(dispatch(conn, None, 'get_methods', (q._token,))))
        conn = Client(address, authkey=key)
        say('objects', dispatch(conn, None, 'number_of_objects') >= 1)
        conn = Client(address, authkey=key)
        say('debug', q._token.id in dispatch(conn, None, 'debug_info'))
        conn = Client(address, authkey=key)
        say('unknown', error_name(lambda: dispatch(conn, None, 'no_such_call')))
        say('unexposed', error_name(lambda: q._callmethod('no_such_method')))
        say('getvalue_queue', error_name(lambda: q._getvalue()))
    elif scenario == 'shapes':
        d = connect().get_dict()
        for i, v in enumerate(SHAPES):
            d[i] = v
        say('stored', len(SHAPES))
        while 'cpp_done' not in d:  # the C++ side reads them and writes them back as ('cpp', i)
            time.sleep(0.01)
        bad = [i for i, v in enumerate(SHAPES)
               if d[i] != v or type(d[i]) is not type(v) or d[('cpp', i)] != v or
               type(d[('cpp', i)]) is not type(v)]
        say('shapes', 'ok' if not bad else bad)
    elif scenario == 'count':
        d = connect().get_dict()
        n = int(sys.argv[4])
        for i in range(n):
            d[(where, sys.argv[4], i)] = i
        say('count', sum(d[(where, sys.argv[4], i)] for i in range(n)))
    elif scenario == 'wrongkey':
        say('wrongkey', error_name(lambda: connect(b'wrong key')))
    elif scenario == 'garbage':
        conn = Client(address, authkey=key)  # a correct handshake
        conn.send_bytes(GARBAGE[sys.argv[4]])
        say('garbage', error_name(conn.recv))
        say('after', connect().get_dict()['a'])
    elif scenario == 'block':
        q = connect().get_queue()
        say('blocking')
        q.get()  # killed here
    elif scenario == 'shutdown':
        conn = Client(address, authkey=key)
        say('shutdown', dispatch(conn, None, 'shutdown'))


main()
