# A differential test of a multiproc ManagerServer (tests/manager_python_test.cpp): every method
# Python's standard proxies expose (DictProxy, ListProxy, the iterator behind `for k in d`, the
# Queue and JoinableQueue AutoProxy, NamespaceProxy, ValueProxy, ArrayProxy) and the #GETVALUE,
# __str__ fallbacks, called the same way on a fresh object of the multiproc server and of
# Python's own SyncManager server (started here, same interpreter). Each call's result (or
# exception type) and the object's value afterwards must be the same on both, except for the
# documented differences in KNOWN (docs/managers.md, "What differs from Python's server"), where
# the multiproc side must give exactly the documented outcome.
#   python3 py_manager_diff.py HOST:PORT HEXKEY
# Prints one line per known difference, one DIFF line per unexpected one, then a summary; exits
# 1 on any unexpected difference.
import array
import sys
from multiprocessing.managers import SyncManager

where, key = sys.argv[1], bytes.fromhex(sys.argv[2])
host, port = where.rsplit(':', 1)


def norm(v):
    """A comparable form of a result: iterators, views and arrays as lists."""
    if isinstance(v, (list, tuple)):
        return type(v)(norm(x) for x in v)
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, array.array):
        return ('array', v.typecode, v.tolist())
    if hasattr(v, '__next__') and not hasattr(v, '_callmethod'):
        return ('iterator', list(v))
    if hasattr(v, '_callmethod'):  # a proxy: compare what it refers to
        return ('proxy', type(v).__name__, norm(list(v)))
    if type(v).__name__ in ('Value', 'Namespace'):
        return repr(v)
    return v


def outcome(f, *a):
    try:
        return ('ok', norm(f(*a)))
    except Exception as e:
        return ('raise', type(e).__name__)


def setitem(o, k, v):
    o[k] = v


def delitem(o, k):
    del o[k]


def iadd(o, v):
    o += v
    return None


def imul(o, v):
    o *= v
    return None


def setattr_(o, k, v):
    setattr(o, k, v)


def delattr_(o, k):
    delattr(o, k)


def drain(it):
    return [next(it) for _ in range(10)]  # ends in StopIteration


def mutate_while_iterating(d):
    it = iter(d)
    first = next(it)
    d['new'] = 1
    return first, outcome(next, it), outcome(next, it)


def exhaust_then_mutate(d):
    it = iter(d)
    items = list(it)
    d['new'] = 1
    return items, outcome(next, it)


def queue_round(q):
    q.put(1)
    q.put_nowait('two')
    out = [q.qsize(), q.empty(), q.full(), q.get(), q.get_nowait(), q.empty()]
    out.append(outcome(q.get_nowait))
    out.append(outcome(q.get, True, 0.05))
    out.append(outcome(q.get, False))
    return out


def bounded_queue(q):
    q.put(1)
    q.put(2)
    return [q.full(), outcome(q.put_nowait, 3), outcome(q.put, 3, True, 0.05),
            outcome(q.put, 3, False), q.qsize()]


def joinable(q):
    q.put('job')
    q.get()
    q.task_done()
    q.join()
    return outcome(q.task_done)


POOL = {}


def pooled(kind, init):
    """A dict or list of this manager's, reused and reset to init: creating a proxy costs
    connections, and the cases are many."""
    def make(m):
        key = (id(m), kind)
        if key not in POOL:
            POOL[key] = getattr(m, kind)()
        p = POOL[key]
        if kind == 'dict':
            p.clear()
            p.update(init)
        else:
            p.__delitem__(slice(None))
            p.extend(init)
        return p
    return make


def shut(q):
    q.put(1)
    q.shutdown()
    return [outcome(q.put, 2), outcome(q.put_nowait, 2), q.get(), outcome(q.get),
            outcome(q.get_nowait), q.qsize(), q.empty()]


def shut_immediate(q):
    q.put(1)
    q.put(2)
    q.shutdown(immediate=True)
    q.join()  # the dropped items count as done
    return [q.qsize(), outcome(q.get), outcome(q.task_done)]


def shut_wakes_getter(q):
    import threading
    t = threading.Timer(0.2, q.shutdown)
    t.start()
    try:
        return outcome(q.get, True, 30)
    finally:
        t.join()


D = pooled('dict', {'a': 1, 'b': [2, 3], 3: 'c', (1, 2): None})
E = pooled('dict', {})
L = pooled('list', [5, 'x', 1.5, 2, 5, (1, 2), None, 2])
N = pooled('list', [3, 1.0, True, 2, -7, 2.5, 0])
S = pooled('list', ['b', 'A', 'a', 'B'])
Q = lambda m: m.Queue()
Q2 = lambda m: m.Queue(2)
JQ = lambda m: m.JoinableQueue()
NS = lambda m: m.Namespace(x=1, y='two', _hidden=3)
V = lambda m: m.Value('i', 5)
A = lambda m: m.Array('i', [1, 2, 3, 4, 5])
AD = lambda m: m.Array('d', [0.5, 1.5])
AB = lambda m: m.Array('b', [1, -1])

CASES = [
    # DictProxy
    ('dict getitem', D, lambda d: d['a']),
    ('dict getitem tuple key', D, lambda d: d[(1, 2)]),
    ('dict getitem missing', D, lambda d: d['zz']),
    ('dict getitem unhashable', D, lambda d: d[[1]]),
    ('dict getitem 1.0 is 1', pooled('dict', {1: 'one'}), lambda d: d[1.0]),
    ('dict getitem True is 1', pooled('dict', {1: 'one'}), lambda d: d[True]),
    ('dict setitem', D, lambda d: setitem(d, 'n', {'x': [1]})),
    ('dict setitem keeps first key', pooled('dict', {1: 'one'}), lambda d: setitem(d, 1.0, 'x')),
    ('dict setitem unhashable', D, lambda d: setitem(d, [1], 2)),
    ('dict delitem', D, lambda d: delitem(d, 'a')),
    ('dict delitem missing', D, lambda d: delitem(d, 'zz')),
    ('dict contains', D, lambda d: 'a' in d),
    ('dict contains missing', D, lambda d: 'zz' in d),
    ('dict contains unhashable', D, lambda d: {} in d),
    ('dict len', D, len),
    ('dict iter list', D, list),
    ('dict iter for', D, lambda d: [k for k in d]),
    ('dict iter empty', E, list),
    ('dict iter next', D, lambda d: next(iter(d))),
    ('dict iter exhausted', D, drain),
    ('dict iter send', D, lambda d: iter(d).send(None)),
    ('dict iter throw', D, lambda d: iter(d).throw(ValueError)),
    ('dict iter close', D, lambda d: iter(d).close()),
    ('dict iter next args', D, lambda d: iter(d).__next__(1)),
    ('dict iter getvalue', D, lambda d: iter(d)._getvalue()),
    ('dict iter changed size', D, mutate_while_iterating),
    ('dict iter exhausted then changed', D, exhaust_then_mutate),
    ('dict iter sorted', D, lambda d: sorted(d, key=str)),
    ('dict keys', D, lambda d: d.keys()),
    ('dict values', D, lambda d: d.values()),
    ('dict items', D, lambda d: d.items()),
    ('dict keys args', D, lambda d: d.keys(1)),
    ('dict copy', D, lambda d: d.copy()),
    ('dict clear', D, lambda d: d.clear()),
    ('dict get', D, lambda d: d.get('a')),
    ('dict get missing', D, lambda d: d.get('zz')),
    ('dict get default', D, lambda d: d.get('zz', 7)),
    ('dict get no args', D, lambda d: d.get()),
    ('dict pop', D, lambda d: d.pop('a')),
    ('dict pop missing', D, lambda d: d.pop('zz')),
    ('dict pop default', D, lambda d: d.pop('zz', 0)),
    ('dict popitem', D, lambda d: d.popitem()),
    ('dict popitem empty', E, lambda d: d.popitem()),
    ('dict setdefault new', D, lambda d: d.setdefault('n', 5)),
    ('dict setdefault old', D, lambda d: d.setdefault('a', 5)),
    ('dict setdefault none', D, lambda d: d.setdefault('n')),
    ('dict update dict', D, lambda d: d.update({'a': 0, 'z': 26})),
    ('dict update pairs', D, lambda d: d.update([('p', 1), ('q', 2)])),
    ('dict update kwargs', D, lambda d: d.update(k=1, a=9)),
    ('dict update bad pair', D, lambda d: d.update([(1, 2, 3)])),
    ('dict update not iterable', D, lambda d: d.update(5)),
    ('dict update two args', D, lambda d: d.update({}, {})),
    ('dict str', D, str),
    ('dict getvalue', D, lambda d: d._getvalue()),
    ('dict function value', D, lambda d: setitem(d, 'f', len)),
    ('dict nested proxy value', D, lambda d: setitem(d, 'l', d)),
    # ListProxy
    ('list getitem', L, lambda l: l[1]),
    ('list getitem negative', L, lambda l: l[-1]),
    ('list getitem -len', L, lambda l: l[-8]),
    ('list getitem out of range', L, lambda l: l[8]),
    ('list getitem -len-1', L, lambda l: l[-9]),
    ('list getitem str', L, lambda l: l['a']),
    ('list getitem float', L, lambda l: l[1.0]),
    ('list getitem bool', L, lambda l: l[True]),
    ('list getitem huge', L, lambda l: l[2**100]),
    ('list slice', L, lambda l: l[1:4]),
    ('list slice open', L, lambda l: l[:]),
    ('list slice step', L, lambda l: l[::2]),
    ('list slice step 3', L, lambda l: l[1:7:3]),
    ('list slice negative step', L, lambda l: l[::-1]),
    ('list slice negative step bounds', L, lambda l: l[6:1:-2]),
    ('list slice negative bounds', L, lambda l: l[-3:-1]),
    ('list slice beyond', L, lambda l: l[5:100]),
    ('list slice huge', L, lambda l: l[-2**80:2**80:2**70]),
    ('list slice empty', L, lambda l: l[4:2]),
    ('list slice step zero', L, lambda l: l[::0]),
    ('list slice str bound', L, lambda l: l['a':]),
    ('list setitem', L, lambda l: setitem(l, 0, 'new')),
    ('list setitem negative', L, lambda l: setitem(l, -2, 'new')),
    ('list setitem out of range', L, lambda l: setitem(l, 8, 0)),
    ('list setitem slice grow', L, lambda l: setitem(l, slice(1, 3), [7, 8, 9, 10])),
    ('list setitem slice shrink', L, lambda l: setitem(l, slice(0, 5), [])),
    ('list setitem slice insert', L, lambda l: setitem(l, slice(2, 2), ['i'])),
    ('list setitem slice reversed bounds', L, lambda l: setitem(l, slice(5, 2), ['r'])),
    ('list setitem slice tuple', L, lambda l: setitem(l, slice(0, 1), (1, 2))),
    ('list setitem slice str', L, lambda l: setitem(l, slice(0, 1), 'ab')),
    ('list setitem slice not iterable', L, lambda l: setitem(l, slice(0, 1), 5)),
    ('list setitem step', L, lambda l: setitem(l, slice(None, None, 2), [0, 1, 2, 3])),
    ('list setitem step wrong size', L, lambda l: setitem(l, slice(None, None, 2), [0])),
    ('list setitem negative step', L, lambda l: setitem(l, slice(None, None, -3), 'abc')),
    ('list setitem step zero', L, lambda l: setitem(l, slice(None, None, 0), [])),
    ('list delitem', L, lambda l: delitem(l, 0)),
    ('list delitem negative', L, lambda l: delitem(l, -1)),
    ('list delitem out of range', L, lambda l: delitem(l, 99)),
    ('list delitem slice', L, lambda l: delitem(l, slice(2, 5))),
    ('list delitem step', L, lambda l: delitem(l, slice(None, None, 2))),
    ('list delitem negative step', L, lambda l: delitem(l, slice(-1, 0, -3))),
    ('list len', L, len),
    ('list iter', L, list),
    ('list iter for', L, lambda l: [x for x in l]),
    ('list reversed', L, lambda l: list(reversed(l))),
    ('list reversed empty', pooled('list', []), lambda l: list(reversed(l))),
    ('list contains', L, lambda l: 'x' in l),
    ('list contains 5.0', L, lambda l: 5.0 in l),
    ('list contains list as tuple', L, lambda l: [1, 2] in l),
    ('list contains missing', L, lambda l: 'zz' in l),
    ('list add', L, lambda l: l + [1]),
    ('list add tuple', L, lambda l: l + (1,)),
    ('list mul', L, lambda l: l * 2),
    ('list mul zero', L, lambda l: l * 0),
    ('list mul negative', L, lambda l: l * -3),
    ('list mul float', L, lambda l: l * 1.5),
    ('list mul huge', L, lambda l: l * 2**100),
    ('list empty mul huge', pooled('list', []), lambda l: l * 10**18),
    ('list rmul', L, lambda l: 2 * l),
    ('list imul', L, lambda l: imul(l, 2)),
    ('list iadd', L, lambda l: iadd(l, [1, 2])),
    ('list iadd tuple', L, lambda l: iadd(l, (1, 2))),
    ('list append', L, lambda l: l.append({'k': 1})),
    ('list append no args', L, lambda l: l.append()),
    ('list extend', L, lambda l: l.extend([1, 2])),
    ('list extend str', L, lambda l: l.extend('ab')),
    ('list extend dict', L, lambda l: l.extend({'k': 1})),
    ('list extend bytes', L, lambda l: l.extend(b'ab')),
    ('list extend not iterable', L, lambda l: l.extend(3)),
    ('list count', L, lambda l: l.count(5)),
    ('list count numeric', L, lambda l: l.count(2.0)),
    ('list count missing', L, lambda l: l.count('zz')),
    ('list index', L, lambda l: l.index(2)),
    ('list index start', L, lambda l: l.index(2, 4)),
    ('list index start stop', L, lambda l: l.index(5, 1, 5)),
    ('list index negative start', L, lambda l: l.index(2, -1)),
    ('list index missing', L, lambda l: l.index('zz')),
    ('list index out of window', L, lambda l: l.index(5, 1, 3)),
    ('list insert', L, lambda l: l.insert(1, 'i')),
    ('list insert negative', L, lambda l: l.insert(-1, 'i')),
    ('list insert beyond', L, lambda l: l.insert(100, 'i')),
    ('list insert before all', L, lambda l: l.insert(-100, 'i')),
    ('list insert str index', L, lambda l: l.insert('a', 'i')),
    ('list pop', L, lambda l: l.pop()),
    ('list pop index', L, lambda l: l.pop(1)),
    ('list pop negative', L, lambda l: l.pop(-2)),
    ('list pop out of range', L, lambda l: l.pop(50)),
    ('list pop empty', pooled('list', []), lambda l: l.pop()),
    ('list remove', L, lambda l: l.remove(5)),
    ('list remove numeric', L, lambda l: l.remove(1.5)),
    ('list remove missing', L, lambda l: l.remove('zz')),
    ('list reverse', L, lambda l: l.reverse()),
    ('list sort numbers', N, lambda l: l.sort()),
    ('list sort reverse', N, lambda l: l.sort(reverse=True)),
    ('list sort reverse stable', pooled('list', [1, 1.0, True, 0, 0.0]),
     lambda l: (l.sort(reverse=True), [type(x).__name__ for x in l])),
    ('list sort stable', pooled('list', [1, 1.0, True, 0, 0.0]),
     lambda l: (l.sort(), [type(x).__name__ for x in l])),
    ('list sort str', S, lambda l: l.sort()),
    ('list sort tuples', pooled('list', [(2, 'a'), (1, 'b'), (1, 'a'), (1,)]), lambda l: l.sort()),
    ('list sort lists', pooled('list', [[2], [1, 5], [1], []]), lambda l: l.sort()),
    ('list sort bytes', pooled('list', [b'b', b'a', b'ab']), lambda l: l.sort()),
    ('list sort big ints', pooled('list', [2**70, -2**70, 5, 2**64, 0.5]), lambda l: l.sort()),
    ('list sort mixed', L, lambda l: l.sort()),
    ('list sort key none', N, lambda l: l.sort(key=None)),
    ('list sort key none reverse', N, lambda l: l.sort(key=None, reverse=True)),
    ('list sort positional', N, lambda l: l.sort(None)),
    ('list sort bad keyword', N, lambda l: l.sort(cmp=None)),
    ('list sort reverse str', N, lambda l: l.sort(reverse='yes')),
    ('list sort key int', N, lambda l: l.sort(key=5)),
    ('list sort key int empty', pooled('list', []), lambda l: l.sort(key=5)),
    ('list sort key builtin', S, lambda l: l.sort(key=len)),
    ('list sort key method', S, lambda l: l.sort(key=str.lower)),
    ('list str', L, str),
    ('list getvalue', L, lambda l: l._getvalue()),
    ('list from str', lambda m: m.list('abc'), list),
    ('list from dict', lambda m: m.list({'k': 1}), list),
    # Queue, JoinableQueue
    ('queue round', Q, queue_round),
    ('queue bounded', Q2, bounded_queue),
    ('queue joinable', JQ, joinable),
    ('queue task_done too many', Q, lambda q: q.task_done()),
    ('queue get negative timeout', Q, lambda q: q.get(True, -1)),
    ('queue getvalue', Q, lambda q: q._getvalue()),
    ('queue has shutdown', Q, lambda q: hasattr(q, 'shutdown')),
    # Namespace
    ('namespace get', NS, lambda n: n.x),
    ('namespace get missing', NS, lambda n: n.zz),
    ('namespace set', NS, lambda n: setattr_(n, 'z', [1])),
    ('namespace del', NS, lambda n: delattr_(n, 'x')),
    ('namespace del missing', NS, lambda n: delattr_(n, 'zz')),
    ('namespace str', NS, str),
    ('namespace getvalue', NS, lambda n: n._getvalue()),
    # Value
    ('value get', V, lambda v: v.get()),
    ('value property', V, lambda v: v.value),
    ('value set', V, lambda v: v.set(7)),
    ('value set property', V, lambda v: setattr(v, 'value', 'any')),
    ('value str', V, str),
    ('value getvalue', V, lambda v: v._getvalue()),
    # Array
    ('array len', A, len),
    ('array getitem', A, lambda a: a[1]),
    ('array getitem negative', A, lambda a: a[-1]),
    ('array getitem out of range', A, lambda a: a[5]),
    ('array getitem str', A, lambda a: a['x']),
    ('array slice', A, lambda a: a[1:3]),
    ('array slice step', A, lambda a: a[::-2]),
    ('array setitem', A, lambda a: setitem(a, 0, 9)),
    ('array setitem negative', A, lambda a: setitem(a, -1, 9)),
    ('array setitem out of range', A, lambda a: setitem(a, 9, 9)),
    ('array setitem float', A, lambda a: setitem(a, 0, 1.5)),
    ('array setitem str', A, lambda a: setitem(a, 0, 'x')),
    ('array setitem overflow', A, lambda a: setitem(a, 0, 2**40)),
    ('array setitem slice list', A, lambda a: setitem(a, slice(0, 2), [7, 8])),
    ('array setitem slice array', A, lambda a: setitem(a, slice(0, 2), array.array('i', [7, 8]))),
    ('array str', A, str),
    ('array getvalue', A, lambda a: a._getvalue()),
    ('array double', AD, lambda a: (a[0], a[1:], setitem(a, 1, 3))),
    ('array double str', AD, lambda a: setitem(a, 1, 'x')),
    ('array byte overflow', AB, lambda a: setitem(a, 0, 128)),
    ('array byte', AB, lambda a: (setitem(a, 0, -128), a[0])),
    ('array bad typecode', lambda m: m.Array('z', [1]), len),
    ('array unicode', lambda m: m.Array('u', 'ab'), len),
    ('array from bytes', lambda m: m.Array('h', b'\x01\x00\xff\xff'), lambda a: a[:]),
]

if sys.version_info >= (3, 13):
    CASES += [
        ('queue shutdown', Q, shut),
        ('queue shutdown immediate', JQ, shut_immediate),
        ('queue shutdown wakes a getter', Q, shut_wakes_getter),
        ('queue shutdown twice', Q, lambda q: (q.shutdown(), q.shutdown(True))),
    ]

# name -> what the multiproc server gives instead of Python's result (docs/managers.md).
NOT_PLAIN = ('raise', 'NotImplementedError')
KNOWN = {
    # A Python function in a request cannot be decoded, let alone called, in C++.
    'dict function value': NOT_PLAIN,
    'list sort key builtin': NOT_PLAIN,
    'list sort key method': NOT_PLAIN,
    # A proxy or an array.array in a request is not plain data either.
    'dict nested proxy value': NOT_PLAIN,
    'array setitem slice array': NOT_PLAIN,
    # Unicode arrays are not served (the create call fails: a RemoteError, as create's errors).
    'array unicode': ('create raises', 'RemoteError'),
}
if sys.version_info < (3, 13):
    # Queue.shutdown() (3.13) is exposed to every client; Python's older servers lack it.
    KNOWN['queue has shutdown'] = ('ok', True)
if sys.version_info < (3, 12):
    # sort(reverse=) takes any object's truth from 3.12 on, as the server does; 3.11 took ints.
    KNOWN['list sort reverse str'] = ('ok', None)


class Hostile:
    def __reduce__(self):
        import os
        return (os.system, ('echo the server ran os.system',))


# Calls made on the multiproc server only (Python's would try them), with the outcome it must
# give; each leaves the connection usable for the next.
OURS_ONLY = [
    ('list mul beyond the bound', L, lambda l: l * 10**6, ('raise', 'MemoryError')),
    ('list extend beyond the bound', L, lambda l: l.extend('x' * (2**22 + 1)),
     ('raise', 'MemoryError')),
    ('dict hostile key', D, lambda d: d[Hostile()], ('raise', 'NotImplementedError')),
    ('dict after hostile', D, lambda d: d['a'], ('ok', 1)),
]


def run(m, make, op):
    try:
        obj = make(m)
    except Exception as e:
        return ('create raises', type(e).__name__)
    result = outcome(op, obj)
    state = outcome(lambda: norm(obj._getvalue()))
    return result, state


def main():
    ours = SyncManager(address=(host, int(port)), authkey=key)
    ours.connect()
    theirs = SyncManager(authkey=key)
    theirs.start()
    unexpected = 0
    known = 0
    try:
        for name, make, op in CASES:
            python, multiproc = run(theirs, make, op), run(ours, make, op)
            if name in KNOWN:
                known += 1
                got = multiproc[0] if isinstance(multiproc[0], tuple) else multiproc
                if got != KNOWN[name] and multiproc != KNOWN[name]:
                    unexpected += 1
                    print('DIFF', name, 'documented', KNOWN[name], 'multiproc', multiproc,
                          flush=True)
                else:
                    print('known', name, 'python', python, 'multiproc', multiproc, flush=True)
            elif python != multiproc:
                unexpected += 1
                print('DIFF', name, 'python', python, 'multiproc', multiproc, flush=True)
        for name, make, op, expected in OURS_ONLY:
            got = run(ours, make, op)[0]
            if got != expected:
                unexpected += 1
                print('DIFF', name, 'expected', expected, 'multiproc', got, flush=True)
    finally:
        theirs.shutdown()
    print('differential', len(CASES), 'cases,', known, 'known differences,', len(OURS_ONLY),
          'multiproc only,', unexpected, 'unexpected', flush=True)
    sys.exit(1 if unexpected else 0)


main()
