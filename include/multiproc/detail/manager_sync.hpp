// Manager proxies of queues and synchronisation primitives (see multiproc/managers.hpp): the
// objects live on the server; a blocking call blocks the server thread serving the caller's
// connection, and other clients (and other threads of the caller, on other connections) go on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "multiproc/detail/manager_proxy.hpp"

namespace mp {

/// A queue on the server (Python's manager Queue).
template <class T>
class QueueProxy : public BaseProxy {
public:
    QueueProxy() = default;
    explicit QueueProxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// Appends item, waiting up to timeout for room in a bounded queue; mp::Full when none came.
    void put(const T& item, Timeout timeout = forever) { put_(item, true, timeout); }
    /// Appends item if there is room now, else mp::Full.
    void put_nowait(const T& item) { put_(item, false, forever); }
    /// Removes and returns the oldest item, waiting up to timeout; mp::Empty when none came.
    [[nodiscard]] T get(Timeout timeout = forever) { return get_(true, timeout); }
    /// Removes and returns the oldest item if there is one now, else mp::Empty.
    [[nodiscard]] T get_nowait() { return get_(false, forever); }
    /// Items in the queue now.
    [[nodiscard]] std::size_t qsize() const { return invoke<std::uint64_t>("qsize"); }
    /// qsize() == 0.
    [[nodiscard]] bool empty() const { return qsize() == 0; }
    /// True when a bounded queue has no room now.
    [[nodiscard]] bool full() const { return invoke<bool>("full"); }

private:
    void put_(const T& item, bool block, Timeout timeout) {
        Encoder e = core_.request("put");
        detail::put_blob(e, item);
        e(block, detail::timeout_ns(timeout));
        core_.call(e).template get<void>();
    }
    T get_(bool block, Timeout timeout) {
        Encoder e = core_.request("get");
        e(block, detail::timeout_ns(timeout));
        return core_.call(e).template get<T>();
    }
};

/// A queue on the server whose consumers mark items done (Python's manager JoinableQueue).
template <class T>
class JoinableQueueProxy : public QueueProxy<T> {
public:
    JoinableQueueProxy() = default;
    explicit JoinableQueueProxy(detail::ProxyCore core) : QueueProxy<T>(std::move(core)) {}
    /// One item taken earlier is done; std::invalid_argument when more than were put.
    void task_done() { this->template invoke<void>("task_done"); }
    /// Waits until every item put has been marked done.
    void join() { this->template invoke<void>("join"); }
};

/// A lock on the server (Python's manager Lock): any thread of any process may release it.
/// Lockable: `std::scoped_lock lk(lock);`.
class LockProxy : public BaseProxy {
public:
    LockProxy() = default;
    explicit LockProxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// Acquires, waiting up to timeout when block; returns whether it did.
    bool acquire(bool block = true, Timeout timeout = forever) {
        return wait_call("acquire", block, timeout);
    }
    /// Releases; std::runtime_error when not held (by the caller, for an RLock).
    void release() { owner_call("release"); }
    /// Lockable.
    void lock() { acquire(); }
    /// Lockable.
    void unlock() { release(); }
    /// Lockable.
    bool try_lock() { return acquire(false); }
};

/// A recursive lock on the server (Python's manager RLock), owned by the calling thread.
class RLockProxy : public LockProxy {
public:
    RLockProxy() = default;
    explicit RLockProxy(detail::ProxyCore core) : LockProxy(std::move(core)) {}
};

/// A semaphore on the server (Python's manager Semaphore / BoundedSemaphore: a bounded one's
/// release() past its initial value is std::invalid_argument).
class SemaphoreProxy : public BaseProxy {
public:
    SemaphoreProxy() = default;
    explicit SemaphoreProxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// Takes one, waiting up to timeout when block; returns whether it did.
    bool acquire(bool block = true, Timeout timeout = forever) {
        return wait_call("acquire", block, timeout);
    }
    /// Gives one back.
    void release() { owner_call("release"); }
    /// The current value.
    [[nodiscard]] int get_value() const;
    /// Lockable.
    void lock() { acquire(); }
    /// Lockable.
    void unlock() { release(); }
    /// Lockable.
    bool try_lock() { return acquire(false); }
};

/// A condition variable on the server with its own recursive lock (Python's manager Condition).
class ConditionProxy : public LockProxy {
public:
    ConditionProxy() = default;
    explicit ConditionProxy(detail::ProxyCore core) : LockProxy(std::move(core)) {}
    /// Releases the lock, waits for a notify (up to timeout), reacquires; false on timeout.
    /// std::runtime_error when the caller does not hold the lock.
    bool wait(Timeout timeout = forever) { return wait_call("wait", true, timeout); }
    /// Wakes up to n waiters (the caller must hold the lock).
    void notify(int n = 1);
    /// Wakes every waiter (the caller must hold the lock).
    void notify_all() { notify(-1); }
};

/// An event on the server (Python's manager Event).
class EventProxy : public BaseProxy {
public:
    EventProxy() = default;
    explicit EventProxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// Sets the flag and wakes every waiter.
    void set();
    /// Clears the flag.
    void clear();
    /// The flag.
    [[nodiscard]] bool is_set() const;
    /// Waits up to timeout for the flag; returns it.
    bool wait(Timeout timeout = forever) { return wait_call("wait", true, timeout); }
};

/// A barrier on the server (Python's manager Barrier).
class BarrierProxy : public BaseProxy {
public:
    BarrierProxy() = default;
    explicit BarrierProxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// Waits for every party (up to timeout, then the barrier breaks); returns the arrival
    /// index. mp::BrokenBarrierError when it is or becomes broken.
    std::size_t wait(Timeout timeout = forever);
    /// Back to the initial state; parties waiting get mp::BrokenBarrierError.
    void reset();
    /// Breaks the barrier.
    void abort();
    /// The number of parties.
    [[nodiscard]] std::size_t parties() const;
    /// The parties waiting now.
    [[nodiscard]] std::size_t n_waiting() const;
    /// True when broken.
    [[nodiscard]] bool broken() const;
};

}  // namespace mp
