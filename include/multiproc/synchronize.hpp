// Synchronization primitives shared between processes (Python's multiprocessing.synchronize):
// Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier.
//
// Across processes: every primitive lives in a shared arena (detail/arena.hpp). A handle is
// cheap to copy and every copy refers to the same primitive, as a Python reference does. A
// forked child inherits the handles it was given (or captured); under spawn and forkserver a
// handle passed as a Process argument, or through a Queue or Pipe, arrives as the same object
// (it travels with the arena's descriptor). Also usable between threads of one process.
//
// Locks are robust. Lock and RLock are owned by the thread that acquired them (a futex word
// holding the owner's thread id underneath): only the owner may release (unlike Python's
// multiprocessing.Lock, which any process may release; ownership is what lets a waiter notice
// the owner's death). If the owner dies while holding it (even by SIGKILL), the next acquirer
// gets the lock AND an mp::OwnerDied exception, within a few milliseconds of the death: the
// catcher holds the lock, can repair the state it protects, and must release it as usual; the
// lock stays usable. Uncontended, acquire and release are one atomic instruction each, inline.
//
// Blocking: lock()/acquire()/wait() block without limit unless given a timeout; timed forms
// take an mp::Timeout or a chrono time point and wait on CLOCK_MONOTONIC against one
// absolute deadline, so signals (EINTR) neither cut them short nor lengthen them. Ctrl-C under
// an mp::SigintGuard makes the waits throw mp::KeyboardInterrupt (docs/signals.md): an acquire
// leaves the lock unheld, Condition::wait holds its lock again, Barrier::wait breaks the
// barrier (as Python's), Semaphore and Event are left as they were.
//
// Owner death, primitive by primitive:
//   Lock, RLock (and the lock of a Value/Array): next acquirer gets mp::OwnerDied, holding it.
//   Condition: a waiter killed while waiting leaves no trace (futex waits are not queued in
//     shared memory); a holder killed inside makes the next acquirer (a woken waiter
//     re-acquiring, in wait()) get mp::OwnerDied holding the lock.
//   Event: has no owner; a process killed in set() or wait() affects nobody.
//   Semaphore: has no owner (any process may release): a unit held by a process that dies is
//     lost, as in Python. Use timeouts where a holder may die.
//   Barrier: a party killed while waiting has arrived: the others pass as usual. A party that
//     dies before arriving looks like a late one: the others wait their timeout (the
//     Barrier's default or wait's), then the barrier breaks (BrokenBarrierError). A process
//     killed inside the action breaks the barrier for the waiters (within ~0.25 s).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "multiproc/detail/arena.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/detail/thread_id.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/reduction.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

/// The previous holder of a lock died holding it; the catcher now holds the lock.
class OwnerDied : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// A Barrier was broken (aborted, reset while waited on, timed out, or its action failed).
class BrokenBarrierError : public ProcessError {
public:
    using ProcessError::ProcessError;
};

namespace detail {

/// The shared state of a Lock/RLock (see synchronize.cpp for the protocol).
struct MutexState {
    std::atomic<std::uint32_t> word;  // owner TID | waiters bit (1u << 31); 0 when free
    std::uint32_t depth;              // written only by the holder
    std::uint32_t recursive;
};

/// A time point of any clock as a CLOCK_MONOTONIC deadline.
template <class Clock, class Duration>
Deadline deadline_at(const std::chrono::time_point<Clock, Duration>& tp) {
    using steady = std::chrono::steady_clock;
    if constexpr (std::is_same_v<Clock, steady>) {
        return Deadline(std::chrono::ceil<steady::duration>(tp));
    } else {
        return Deadline(steady::now() + std::chrono::ceil<steady::duration>(tp - Clock::now()));
    }
}

/// What Lock and RLock share: a robust process-shared mutex with an owner and a depth.
class LockBase {
public:
    /// Python's acquire(block): waits without limit, or not at all; false if not acquired.
    /// Throws mp::OwnerDied (lock held) when the previous holder died holding it.
    bool acquire(bool blocking = true) {
        if (fast_acquire()) return true;
        return blocking ? acquire_until(Deadline::never()) : try_lock();
    }
    /// Python's acquire(timeout=t): false if not acquired within t.
    bool acquire(Timeout timeout) { return fast_acquire() || acquire_until(Deadline(timeout)); }
    /// Python's acquire(block, timeout).
    bool acquire(bool blocking, Timeout timeout) {
        return blocking ? acquire(timeout) : try_lock();
    }
    /// Releases; mp::UsageError when the calling thread does not hold it.
    void release() {
        if (!fast_release()) release_slow();
    }

    /// Lockable: blocks until held (throws mp::OwnerDied, holding it, after an owner death).
    void lock() {
        if (!fast_acquire()) (void)acquire_until(Deadline::never());
    }
    /// Lockable: releases (same as release()).
    void unlock() { release(); }
    /// Lockable: takes the lock only if free now (or, for an RLock, held by the caller).
    [[nodiscard]] bool try_lock() { return fast_acquire() || try_lock_slow(); }
    /// TimedLockable: waits up to d.
    template <class Rep, class Period>
    [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& d) {
        return acquire_until(Deadline(Timeout(d)));
    }
    /// TimedLockable: waits until tp (any clock; measured on CLOCK_MONOTONIC).
    template <class Clock, class Duration>
    [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& tp) {
        return acquire_until(deadline_at(tp));
    }

    /// True when the calling thread holds it.
    [[nodiscard]] bool is_owned() const noexcept;

    /// Waits until the deadline (the core of every acquire).
    [[nodiscard]] bool acquire_until(Deadline deadline);
    /// Releases entirely (whatever the depth) and returns the depth (Condition::wait).
    unsigned release_all();
    /// Re-acquires with the given depth (Condition::wait); may throw mp::OwnerDied, holding it.
    void reacquire(unsigned depth);

    /// Codec.
    void save(Encoder& e) const { e(block_); }
    /// Codec.
    void load(Decoder& d);

protected:
    explicit LockBase(bool recursive);

private:
    // Uncontended paths, inline: one compare-and-swap each; anything else goes out of line.
    bool fast_acquire() noexcept {
        const std::uint32_t me = t_tid;
        std::uint32_t v = 0;
        if (me == 0 || !st_->word.compare_exchange_strong(v, me, std::memory_order_acquire,
                                                          std::memory_order_relaxed))
            return false;
        st_->depth = 1;
        return true;
    }
    bool fast_release() noexcept {
        const std::uint32_t me = t_tid;
        if (me == 0 || (st_->recursive && st_->depth != 1)) return false;
        std::uint32_t v = me;  // fails when not ours, or when the waiters bit asks for a wake
        return st_->word.compare_exchange_strong(v, 0, std::memory_order_release,
                                                 std::memory_order_relaxed);
    }
    void release_slow();
    bool try_lock_slow();

    SharedBlock block_;
    MutexState* st_ = nullptr;
};

}  // namespace detail

/// Python's multiprocessing.Lock: a non-recursive lock, robust against its holder's death.
/// Acquiring it again from the thread that holds it fails (false after the timeout, or
/// mp::UsageError when waiting without limit, instead of Python's deadlock).
class Lock : public detail::LockBase {
public:
    /// A new, unlocked lock in shared memory.
    Lock() : LockBase(false) {}
};

/// Python's multiprocessing.RLock: the holding thread may acquire it again; each acquire
/// needs a release, and only the holder may release.
class RLock : public detail::LockBase {
public:
    /// A new, unlocked recursive lock in shared memory.
    RLock() : LockBase(true) {}
};

/// Python's multiprocessing.Semaphore: a shared counter; acquire waits while it is zero.
/// Any thread of any process may release. Lockable (lock = acquire, unlock = release).
class Semaphore {
public:
    /// A semaphore with `value` units.
    explicit Semaphore(unsigned value = 1) : Semaphore(value, 0) {}

    /// Takes a unit, waiting without limit (blocking) or not at all; false if none taken.
    bool acquire(bool blocking = true) {
        return acquire_until(blocking ? detail::Deadline::never()
                                      : detail::Deadline(Timeout(std::chrono::nanoseconds(0))));
    }
    /// Takes a unit, waiting up to `timeout`; false if none became free.
    bool acquire(Timeout timeout) { return acquire_until(detail::Deadline(timeout)); }
    /// Python's acquire(block, timeout).
    bool acquire(bool blocking, Timeout timeout) {
        return blocking ? acquire(timeout) : acquire(false);
    }
    /// Gives a unit back (BoundedSemaphore: mp::UsageError above the initial value).
    void release();
    /// The current count (Python's get_value()).
    [[nodiscard]] unsigned get_value() const noexcept;

    /// Lockable.
    void lock() { (void)acquire(true); }
    /// Lockable.
    void unlock() { release(); }
    /// Lockable.
    [[nodiscard]] bool try_lock() { return acquire(false); }
    /// TimedLockable.
    template <class Rep, class Period>
    [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& d) {
        return acquire(Timeout(d));
    }
    /// TimedLockable.
    template <class Clock, class Duration>
    [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& tp) {
        return acquire_until(detail::deadline_at(tp));
    }
    /// Waits until the deadline for a unit.
    [[nodiscard]] bool acquire_until(detail::Deadline deadline);

    /// Codec.
    void save(Encoder& e) const { e(block_); }
    /// Codec.
    void load(Decoder& d);

protected:
    Semaphore(unsigned value, unsigned max);

private:
    struct State;
    detail::SharedBlock block_;
    State* st_ = nullptr;
};

/// Python's multiprocessing.BoundedSemaphore: releasing above the initial value is an error.
class BoundedSemaphore : public Semaphore {
public:
    /// A bounded semaphore with `value` units (also its maximum).
    explicit BoundedSemaphore(unsigned value = 1) : Semaphore(value, value) {}
};

/// Python's multiprocessing.Event: a shared flag that processes can wait for.
class Event {
public:
    /// A new event, initially clear.
    Event();
    /// Sets the flag and wakes every waiter (in every process).
    void set() noexcept;
    /// Clears the flag.
    void clear() noexcept;
    /// True when set.
    [[nodiscard]] bool is_set() const noexcept;
    /// Waits until set or the timeout passes; returns the flag (false: timed out).
    bool wait(Timeout timeout = forever);

    /// Codec.
    void save(Encoder& e) const { e(block_); }
    /// Codec.
    void load(Decoder& d);

private:
    struct State;
    detail::SharedBlock block_;
    State* st_ = nullptr;
};

/// Python's multiprocessing.Condition over a Lock or RLock (a new RLock by default).
/// Lockable through its lock. Like std::condition_variable, wait() may return spuriously
/// (an over-eager wake-up): prefer wait_for(predicate).
class Condition {
public:
    /// A condition with a new RLock.
    Condition() : Condition(RLock()) {}
    /// A condition over an existing lock (shared with its other users).
    explicit Condition(Lock lock) : Condition(static_cast<detail::LockBase&&>(lock), false) {}
    /// A condition over an existing recursive lock.
    explicit Condition(RLock lock) : Condition(static_cast<detail::LockBase&&>(lock), true) {}

    /// Acquires the lock (see Lock::acquire).
    bool acquire(bool blocking = true) { return lock_.acquire(blocking); }
    /// Acquires the lock within the timeout.
    bool acquire(Timeout timeout) { return lock_.acquire(timeout); }
    /// Releases the lock.
    void release() { lock_.release(); }
    /// Lockable.
    void lock() { lock_.lock(); }
    /// Lockable.
    void unlock() { lock_.unlock(); }
    /// Lockable.
    [[nodiscard]] bool try_lock() { return lock_.try_lock(); }

    /// Releases the lock (entirely, for an RLock), sleeps until notified or the timeout,
    /// re-acquires. false: timed out. The caller must hold the lock (else mp::UsageError).
    /// Re-acquiring may throw mp::OwnerDied (lock held) if a holder died meanwhile.
    bool wait(Timeout timeout = forever) { return wait_until(detail::Deadline(timeout)); }
    /// wait() against an absolute deadline.
    bool wait_until(detail::Deadline deadline);
    /// wait() until a time point of any clock.
    template <class Clock, class Duration>
    bool wait_until(const std::chrono::time_point<Clock, Duration>& tp) {
        return wait_until(detail::deadline_at(tp));
    }
    /// Waits until pred() is true or the timeout passes; returns pred()'s last value.
    template <class Pred>
    bool wait_for(Pred pred, Timeout timeout = forever) {
        const detail::Deadline deadline(timeout);
        bool result = pred();
        while (!result) {
            if (deadline.expired()) break;
            (void)wait_until(deadline);
            result = pred();
        }
        return result;
    }
    /// Wakes up to n waiters; the caller must hold the lock (else mp::UsageError).
    void notify(unsigned n = 1);
    /// Wakes every waiter; the caller must hold the lock (else mp::UsageError).
    void notify_all();

    /// Codec.
    void save(Encoder& e) const;
    /// Codec.
    void load(Decoder& d);

private:
    struct State;
    struct AnyLock : detail::LockBase {
        AnyLock() : LockBase(true) {}
        AnyLock(detail::LockBase&& l) : LockBase(std::move(l)) {}  // NOLINT
    };
    Condition(detail::LockBase&& lock, bool recursive);
    AnyLock lock_;
    bool recursive_ = true;
    detail::SharedBlock block_;
    State* st_ = nullptr;
};

/// Python's multiprocessing.Barrier: `parties` processes (or threads) wait until all arrive.
class Barrier {
public:
    /// A barrier for `parties` parties, no action, waits without limit by default.
    explicit Barrier(unsigned parties = 1) : Barrier(parties, nullptr, forever) {}
    /// A barrier for `parties` parties without action; `timeout` is wait()'s default.
    Barrier(unsigned parties, std::nullptr_t, Timeout timeout)
        : Barrier(parties, Action{}, timeout) {}
    /// A barrier whose `action` runs once per round, in the last arriving party, before the
    /// others are released; `timeout` is wait()'s default. A plain function or captureless
    /// lambda travels with the handle to children of every start method (by identity, see
    /// callable.hpp); any other callable is kept in this process and its forked children only
    /// (a handle received under spawn/forkserver then has no action; a round completed there
    /// runs none).
    template <class F>
    requires std::is_invocable_v<F&> Barrier(unsigned parties, F action, Timeout timeout = forever)
        : Barrier(parties, make_action(std::move(action)), timeout) {}
    /// Waits for every party with the default timeout; returns the arrival index (0 first,
    /// parties()-1 last). Throws mp::BrokenBarrierError if the barrier breaks or times out.
    unsigned wait() { return wait_impl(default_deadline()); }
    /// As wait(), with this timeout.
    unsigned wait(Timeout timeout) { return wait_impl(detail::Deadline(timeout)); }
    /// Returns the barrier to its initial state; parties waiting get mp::BrokenBarrierError.
    void reset();
    /// Breaks the barrier: waiters and later wait() calls get mp::BrokenBarrierError.
    void abort();
    /// The number of parties.
    [[nodiscard]] unsigned parties() const noexcept;
    /// The number of parties waiting now.
    [[nodiscard]] unsigned n_waiting() const noexcept;
    /// True when broken.
    [[nodiscard]] bool broken() const noexcept;

    /// Codec (the action travels when it is a plain function).
    void save(Encoder& e) const;
    /// Codec.
    void load(Decoder& d);

private:
    struct State;
    struct Action {
        void (*fn)() = nullptr;       // travels by identity
        std::function<void()> local;  // stays in this process (and forked children)
        void operator()() const { fn ? fn() : local(); }
        explicit operator bool() const noexcept { return fn || local; }
    };
    template <class F>
    static Action make_action(F f) {
        if constexpr (std::is_convertible_v<F, void (*)()>)
            return Action{static_cast<void (*)()>(f), {}};
        else return Action{nullptr, std::function<void()>(std::move(f))};
    }
    Barrier(unsigned parties, Action action, Timeout timeout);
    static void break_locked(State* st);
    detail::Deadline default_deadline() const;
    unsigned wait_impl(detail::Deadline deadline);
    detail::SharedBlock block_;
    State* st_ = nullptr;
    Action action_;
};

}  // namespace mp
