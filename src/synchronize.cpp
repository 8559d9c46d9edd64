// Locks, semaphores, events, conditions and barriers in shared arenas.
//
// Lock/RLock: a futex word holding the owner's kernel thread id (TID), plus the recursion
// depth kept beside it:
//
//   bit 31       bits 30..0
//   +---------+----------------------------------+
//   | waiters | owner TID (0: free)              |
//   +---------+----------------------------------+
//
// Uncontended, acquire is one compare-and-swap (0 -> TID) and release one exchange (-> 0); the
// futex is woken only when the waiters bit says someone sleeps. A thread id identifies the
// owner for as long as the owner lives: no two live threads share one, and a forked child's
// thread gets its own (the cached TID is dropped in the child, see owner_tid.cpp).
//
// Owner death: waiters sleep in bounded slices (1 ms, doubling to 128 ms); when a slice ends,
// and whenever an acquire is about to fail (try_lock, timeout), the waiter asks the kernel
// whether the owner TID still names a live thread (pidfd_open + poll: ESRCH, or a pidfd that
// is readable because the process has exited and is a zombie not yet reaped). If it does
// not, the waiter swaps its own TID in over exactly the dead value it saw: one waiter wins,
// gets mp::OwnerDied holding the lock, and the lock stays usable. No state of the dead owner
// needs undoing: the word is all there is. The residual risks (a dead owner's TID taken again
// by a new thread before a waiter looks; a main thread gone by pthread_exit counting as alive
// until its process exits) are in docs/shared_state.md.
//
// Everything else is a 32-bit futex word: waiters sleep in the kernel's futex queues, not in
// shared memory, so a waiter that dies leaves no state behind for others to trip on.
#include "multiproc/synchronize.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <new>

#include "multiproc/callable.hpp"
#include "owner_tid.hpp"
#include "sys/cpu_relax.hpp"
#include "sys/futex.hpp"
#include "sys/syscall.hpp"
#include "trace_hook.hpp"

namespace mp {
namespace detail {
namespace {

constexpr std::uint32_t kWaiters = 0x80000000U;
constexpr std::uint32_t kTidMask = 0x7fffffffU;
constexpr auto kFirstSlice = std::chrono::milliseconds(1);
constexpr auto kMaxSlice = std::chrono::milliseconds(128);

// Sleeps until the deadline (never returns for a deadline of forever): a futex wait on a word
// nobody wakes, so that it goes through the one wait loop (signals retried, Ctrl-C under
// mp::SigintGuard interrupts: a Lock's holder acquiring it again with a timeout).
void sleep_until(Deadline deadline) {
    std::atomic<std::uint32_t> nobody_wakes{0};
    while (sys::futex_wait(nobody_wakes, 0, deadline, sys::Interruptible::yes)) {
    }
}

const char* const kOwnerDied =
    "multiproc: the previous holder of this lock died while holding it; the caller now holds "
    "the lock and should repair the state it protects (the lock stays usable)";

void init_mutex(MutexState* st, bool recursive) {
    st->word.store(0, std::memory_order_relaxed);
    st->depth = 0;
    st->recursive = recursive ? 1 : 0;
}

// If the owner in `seen` is dead, swaps our TID in over exactly that value (one waiter wins).
bool take_over_if_dead(MutexState* st, std::uint32_t seen, std::uint32_t me) {
    const std::uint32_t owner = seen & kTidMask;
    if (owner == 0 || thread_alive(owner)) return false;
    // Keep the waiters bit: others may sleep on the word.
    return st->word.compare_exchange_strong(seen, me | kWaiters, std::memory_order_acquire,
                                            std::memory_order_relaxed);
}

// The contended path. 0: acquired; 1: not acquired (busy, timed out); 2: acquired, owner died.
// sys::Interruptible::yes only for a caller's acquire: nothing is held yet when it throws.
[[gnu::noinline]] int mutex_lock_slow(MutexState* st, std::uint32_t me, Deadline deadline,
                                      bool try_only,
                                      sys::Interruptible intr = sys::Interruptible::no) {
    // No spin before sleeping: on the 2-core development machine a spin made no measurable
    // difference to counter_2proc and, in Event's wait, tripled the ping-pong round trip (the
    // spinner holds the CPU the holder needs). A busy lock is slept on at once, as glibc does.
    if (!try_only && !deadline.is_forever() && deadline.expired()) try_only = true;
    auto slice = std::chrono::duration_cast<std::chrono::nanoseconds>(kFirstSlice);
    for (;;) {
        std::uint32_t v = st->word.load(std::memory_order_relaxed);
        if ((v & kTidMask) == 0) {
            // Taken with the waiters bit: we cannot know whether others still sleep.
            if (st->word.compare_exchange_weak(v, me | (try_only ? 0 : kWaiters),
                                               std::memory_order_acquire,
                                               std::memory_order_relaxed))
                return 0;
            continue;
        }
        if (try_only) return take_over_if_dead(st, v, me) ? 2 : 1;
        if (!(v & kWaiters)) {
            if (!st->word.compare_exchange_weak(v, v | kWaiters, std::memory_order_relaxed,
                                                std::memory_order_relaxed))
                continue;
            v |= kWaiters;
        }
        const Deadline slice_end{Timeout(slice)};
        const bool sliced = deadline.is_forever() || *deadline.at() > *slice_end.at();
        if (sys::futex_wait(st->word, v, sliced ? slice_end : deadline, intr)) continue;
        // Timed out: the slice (or the caller's deadline) ended. Is the owner still there?
        v = st->word.load(std::memory_order_relaxed);
        if ((v & kTidMask) != 0 && take_over_if_dead(st, v, me)) return 2;
        if (!sliced) try_only = true;  // one last look at the word, then give up
        slice = std::min<std::chrono::nanoseconds>(slice * 2, kMaxSlice);
    }
}

// 0: acquired; 1: not acquired (busy or timed out); 2: acquired after the owner died.
inline int mutex_lock(MutexState* st, Deadline deadline, bool try_only) {
    const std::uint32_t me = my_tid();
    std::uint32_t v = 0;
    if (st->word.compare_exchange_strong(v, me, std::memory_order_acquire,
                                         std::memory_order_relaxed))
        return 0;
    return mutex_lock_slow(st, me, deadline, try_only);
}

inline void mutex_unlock(MutexState* st) noexcept {
    if (st->word.exchange(0, std::memory_order_release) & kWaiters) sys::futex_wake(st->word, 1);
}

[[noreturn]] void throw_not_owner(bool recursive) {
    throw UsageError(recursive
                         ? "multiproc: cannot release an RLock the calling thread does not hold"
                         : "multiproc: cannot release a Lock the calling thread does not hold "
                           "(it is unlocked, or held by another thread or process)");
}

// The end of a contended acquire, given mutex_lock_slow's answer: false when not acquired;
// else the depth starts at 1, and mp::OwnerDied (holding the lock) when the owner had died.
bool finish_acquire(MutexState* st, int r) {
    if (r == 1) return false;
    st->depth = 1;
    if (r == 2) throw OwnerDied(kOwnerDied);
    return true;
}

// The uncontended start of every acquire: free -> taken (depth 1); held by this thread ->
// one level deeper for an RLock. `held_by_me` is left for the caller to judge (a Lock).
enum class Entry { acquired, held_by_me, contended };
Entry enter(MutexState* st, std::uint32_t me) {
    std::uint32_t v = 0;
    if (st->word.compare_exchange_strong(v, me, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
        st->depth = 1;
        return Entry::acquired;
    }
    if ((v & kTidMask) != me) return Entry::contended;
    if (!st->recursive) return Entry::held_by_me;
    ++st->depth;
    return Entry::acquired;
}

}  // namespace

LockBase::LockBase(bool recursive)
    : block_(SharedBlock::allocate(sizeof(MutexState), alignof(MutexState))),
      st_(new (block_.data()) MutexState) {
    init_mutex(st_, recursive);
}

void LockBase::load(Decoder& d) {
    SharedBlock b;
    d(b);
    if (b.size() < sizeof(MutexState))
        throw DecodeError("multiproc: corrupt message: lock block too small");
    block_ = std::move(b);
    st_ = static_cast<MutexState*>(block_.data());
}

bool LockBase::is_owned() const noexcept {
    return (st_->word.load(std::memory_order_relaxed) & kTidMask) == my_tid();
}

bool LockBase::try_lock_slow() {
    const std::uint32_t me = my_tid();
    switch (enter(st_, me)) {
        case Entry::acquired: return true;
        case Entry::held_by_me: return false;
        case Entry::contended: break;
    }
    return finish_acquire(st_, mutex_lock_slow(st_, me, Deadline::never(), true));
}

bool LockBase::acquire_until(Deadline deadline) {
    const std::uint32_t me = my_tid();
    const Entry entry = enter(st_, me);
    if (entry == Entry::acquired) return true;
    if (entry == Entry::held_by_me) {
        if (deadline.is_forever())
            throw UsageError("multiproc: Lock acquired again by the thread that holds it: this "
                             "would deadlock (use an RLock to acquire recursively)");
        sleep_until(deadline);
        return false;
    }
    trace::WaitSpan wait("lock", trace::blocks_now);
    return finish_acquire(st_, mutex_lock_slow(st_, me, deadline, false, sys::Interruptible::yes));
}

void LockBase::release_slow() {
    if ((st_->word.load(std::memory_order_relaxed) & kTidMask) != my_tid())
        throw_not_owner(st_->recursive);
    if (st_->recursive && --st_->depth > 0) return;
    mutex_unlock(st_);
}

unsigned LockBase::release_all() {
    if ((st_->word.load(std::memory_order_relaxed) & kTidMask) != my_tid())
        throw UsageError("multiproc: Condition: the calling thread does not hold the lock");
    const unsigned depth = st_->recursive ? st_->depth : 1;
    st_->depth = 0;
    mutex_unlock(st_);
    return depth;
}

void LockBase::reacquire(unsigned depth) {
    const int r = mutex_lock(st_, Deadline::never(), false);
    st_->depth = depth;
    if (r == 2) throw OwnerDied(kOwnerDied);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Semaphore

struct Semaphore::State {
    std::atomic<std::uint32_t> value;
    std::atomic<std::uint32_t> waiters;  // an over-count (a dead waiter) only costs a wake call
    std::uint32_t max;                   // 0: unbounded
};

Semaphore::Semaphore(unsigned value, unsigned max)
    : block_(detail::SharedBlock::allocate(sizeof(State), alignof(State))),
      st_(new (block_.data()) State) {
    if (value > INT_MAX) throw std::invalid_argument("multiproc: Semaphore value too large");
    st_->value.store(value, std::memory_order_relaxed);
    st_->waiters.store(0, std::memory_order_relaxed);
    st_->max = max;
}

void Semaphore::load(Decoder& d) {
    detail::SharedBlock b;
    d(b);
    if (b.size() < sizeof(State))
        throw DecodeError("multiproc: corrupt message: semaphore block too small");
    block_ = std::move(b);
    st_ = static_cast<State*>(block_.data());
}

bool Semaphore::acquire_until(detail::Deadline deadline) {
    std::uint32_t v = st_->value.load(std::memory_order_relaxed);
    for (;;) {
        while (v > 0) {
            if (st_->value.compare_exchange_weak(v, v - 1, std::memory_order_acquire,
                                                 std::memory_order_relaxed))
                return true;
        }
        if (!deadline.is_forever() && deadline.expired()) return false;
        st_->waiters.fetch_add(1, std::memory_order_seq_cst);
        v = st_->value.load(std::memory_order_seq_cst);
        bool in_time = true;
        try {
            if (v == 0) in_time = sys::futex_wait(st_->value, 0, deadline, sys::Interruptible::yes);
        } catch (...) {
            st_->waiters.fetch_sub(1, std::memory_order_relaxed);
            throw;
        }
        st_->waiters.fetch_sub(1, std::memory_order_relaxed);
        v = st_->value.load(std::memory_order_relaxed);
        if (!in_time && v == 0) return false;
    }
}

void Semaphore::release() {
    std::uint32_t v = st_->value.load(std::memory_order_relaxed);
    do {
        if (st_->max ? v >= st_->max : v >= INT_MAX)
            throw UsageError("multiproc: semaphore or lock released too many times");
    } while (!st_->value.compare_exchange_weak(v, v + 1, std::memory_order_seq_cst,
                                               std::memory_order_relaxed));
    if (st_->waiters.load(std::memory_order_seq_cst)) sys::futex_wake(st_->value, 1);
}

unsigned Semaphore::get_value() const noexcept {
    return st_->value.load(std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------------
// Event

struct Event::State {
    std::atomic<std::uint32_t> flag;
    std::atomic<std::uint32_t> waiters;
};

Event::Event()
    : block_(detail::SharedBlock::allocate(sizeof(State), alignof(State))),
      st_(new (block_.data()) State) {
    st_->flag.store(0, std::memory_order_relaxed);
    st_->waiters.store(0, std::memory_order_relaxed);
}

void Event::load(Decoder& d) {
    detail::SharedBlock b;
    d(b);
    if (b.size() < sizeof(State))
        throw DecodeError("multiproc: corrupt message: event block too small");
    block_ = std::move(b);
    st_ = static_cast<State*>(block_.data());
}

void Event::set() noexcept {
    if (st_->flag.exchange(1, std::memory_order_seq_cst) == 0 &&
        st_->waiters.load(std::memory_order_seq_cst))
        sys::futex_wake_all(st_->flag);
}

void Event::clear() noexcept { st_->flag.store(0, std::memory_order_seq_cst); }

bool Event::is_set() const noexcept { return st_->flag.load(std::memory_order_acquire) != 0; }

bool Event::wait(Timeout timeout) {
    // A short spin before sleeping: a peer running on another core usually answers within a
    // microsecond or two, and sleeping costs a futex wait plus a wake-up (event_pingpong: about
    // 10 us without the spin, well under 1 us with it, on an idle 2-core machine). The spin is
    // bounded to a few microseconds, so a waiter whose peer needs this very CPU loses little.
    for (int i = 0; i < 64; ++i) {
        if (is_set()) return true;
        sys::cpu_relax();
    }
    const detail::Deadline deadline(timeout);
    st_->waiters.fetch_add(1, std::memory_order_seq_cst);
    try {
        while (st_->flag.load(std::memory_order_seq_cst) == 0) {
            if (!sys::futex_wait(st_->flag, 0, deadline, sys::Interruptible::yes)) break;
        }
    } catch (...) {
        st_->waiters.fetch_sub(1, std::memory_order_relaxed);
        throw;
    }
    st_->waiters.fetch_sub(1, std::memory_order_relaxed);
    return is_set();
}

// ---------------------------------------------------------------------------------------------
// Condition

struct Condition::State {
    std::atomic<std::uint32_t> seq;
    std::atomic<std::uint32_t> waiters;
};

Condition::Condition(detail::LockBase&& lock, bool recursive)
    : lock_(std::move(lock)), recursive_(recursive),
      block_(detail::SharedBlock::allocate(sizeof(State), alignof(State))),
      st_(new (block_.data()) State) {
    st_->seq.store(0, std::memory_order_relaxed);
    st_->waiters.store(0, std::memory_order_relaxed);
}

void Condition::save(Encoder& e) const { e(lock_, recursive_, block_); }

void Condition::load(Decoder& d) {
    detail::SharedBlock b;
    d(lock_, recursive_, b);
    if (b.size() < sizeof(State))
        throw DecodeError("multiproc: corrupt message: condition block too small");
    block_ = std::move(b);
    st_ = static_cast<State*>(block_.data());
}

bool Condition::wait_until(detail::Deadline deadline) {
    if (!lock_.is_owned())
        throw UsageError(
            "multiproc: cannot wait on a Condition whose lock the caller does not hold");
    // Read the sequence while holding the lock: a notify (which needs the lock) after this
    // point changes it, and the futex wait below then returns at once instead of sleeping.
    const std::uint32_t seq = st_->seq.load(std::memory_order_seq_cst);
    st_->waiters.fetch_add(1, std::memory_order_seq_cst);
    const unsigned depth = lock_.release_all();
    bool in_time = true;
    try {
        in_time = sys::futex_wait(st_->seq, seq, deadline, sys::Interruptible::yes);
    } catch (...) {
        // KeyboardInterrupt included: the caller leaves holding the lock, as Python's wait.
        st_->waiters.fetch_sub(1, std::memory_order_relaxed);
        lock_.reacquire(depth);
        throw;
    }
    st_->waiters.fetch_sub(1, std::memory_order_relaxed);
    lock_.reacquire(depth);
    return in_time;
}

void Condition::notify(unsigned n) {
    if (!lock_.is_owned())
        throw UsageError(
            "multiproc: cannot notify on a Condition whose lock the caller does not hold");
    if (n == 0 || !st_->waiters.load(std::memory_order_seq_cst)) return;
    st_->seq.fetch_add(1, std::memory_order_seq_cst);
    sys::futex_wake(st_->seq, n > INT_MAX ? INT_MAX : static_cast<int>(n));
}

void Condition::notify_all() {
    if (!lock_.is_owned())
        throw UsageError(
            "multiproc: cannot notify on a Condition whose lock the caller does not hold");
    if (!st_->waiters.load(std::memory_order_seq_cst)) return;
    st_->seq.fetch_add(1, std::memory_order_seq_cst);
    sys::futex_wake_all(st_->seq);
}

// ---------------------------------------------------------------------------------------------
// Barrier

struct Barrier::State {
    detail::MutexState m;            // guards everything below but gen's futex reads
    std::atomic<std::uint32_t> gen;  // bumped when a round completes or breaks
    std::uint32_t parties;
    std::uint32_t count;  // arrived in this round
    std::uint32_t broken;
    std::uint64_t broke_bits;  // bit (g % 64): round g ended by breaking, not completing
    std::int64_t timeout_ns;   // the default timeout, -1 for forever
};

namespace {

constexpr auto kDeathPoll = std::chrono::milliseconds(250);

std::uint64_t gen_bit(std::uint32_t g) { return std::uint64_t{1} << (g % 64); }

}  // namespace

Barrier::Barrier(unsigned parties, Action action, Timeout timeout)
    : block_(detail::SharedBlock::allocate(sizeof(State), alignof(State))),
      st_(new (block_.data()) State), action_(std::move(action)) {
    if (parties == 0) throw std::invalid_argument("multiproc: a Barrier needs at least one party");
    detail::init_mutex(&st_->m, false);
    st_->gen.store(0, std::memory_order_relaxed);
    st_->parties = parties;
    st_->count = 0;
    st_->broken = 0;
    st_->broke_bits = 0;
    st_->timeout_ns = timeout.is_forever() ? -1 : timeout.duration().count();
}

void Barrier::load(Decoder& d) {
    detail::SharedBlock b;
    d(b);
    if (b.size() < sizeof(State))
        throw DecodeError("multiproc: corrupt message: barrier block too small");
    block_ = std::move(b);
    st_ = static_cast<State*>(block_.data());
    action_ = Action{};
    bool has_fn = false;
    d(has_fn);
    if (has_fn)
        action_.fn =
            reinterpret_cast<void (*)()>(detail::resolve_code_address(d,
                                                                      detail::EntryKind::function));
}

void Barrier::save(Encoder& e) const {
    e(block_);
    e(action_.fn != nullptr);
    if (action_.fn) detail::encode_code_address(e, detail::code_address(action_.fn));
}

detail::Deadline Barrier::default_deadline() const {
    const std::int64_t ns = st_->timeout_ns;
    return ns < 0 ? detail::Deadline::never()
                  : detail::Deadline(Timeout(std::chrono::nanoseconds(ns)));
}

namespace {

// The barrier's own mutex, robust like any lock: if a process died holding it (inside the
// action, or between two instructions of wait), the round it was in is broken.
struct BarrierGuard {
    detail::MutexState* m;
    bool owner_died = false;
    explicit BarrierGuard(detail::MutexState* mu) : m(mu) {
        owner_died = detail::mutex_lock(m, detail::Deadline::never(), false) == 2;
    }
    ~BarrierGuard() { detail::mutex_unlock(m); }
    BarrierGuard(const BarrierGuard&) = delete;
    BarrierGuard& operator=(const BarrierGuard&) = delete;
};

}  // namespace

// Ends the current round by breaking it; the caller holds the barrier's mutex.
void Barrier::break_locked(State* st) {
    st->broken = 1;
    st->count = 0;
    const std::uint32_t g = st->gen.load(std::memory_order_relaxed);
    st->broke_bits |= gen_bit(g);
    st->gen.store(g + 1, std::memory_order_release);
    sys::futex_wake_all(st->gen);
}

unsigned Barrier::wait_impl(detail::Deadline deadline) {
    std::uint32_t g;
    unsigned index;
    {
        BarrierGuard lk(&st_->m);
        if (lk.owner_died) break_locked(st_);
        if (st_->broken) throw BrokenBarrierError("multiproc: the Barrier is broken");
        index = st_->count++;
        g = st_->gen.load(std::memory_order_relaxed);
        if (st_->count == st_->parties) {
            if (action_) {
                try {
                    action_();
                } catch (...) {
                    break_locked(st_);
                    throw;
                }
            }
            st_->count = 0;
            st_->broke_bits &= ~gen_bit(g);
            st_->gen.store(g + 1, std::memory_order_release);
            sys::futex_wake_all(st_->gen);
            return index;
        }
    }
    for (;;) {
        // Slices bound how long a process killed inside the action (holding the barrier's
        // mutex) can keep the others waiting: each slice probes the mutex for EOWNERDEAD.
        const auto slice = detail::Deadline(Timeout(kDeathPoll));
        const bool use_slice = deadline.is_forever() || *deadline.at() > *slice.at();
        bool woke;
        try {
            woke =
                sys::futex_wait(st_->gen, g, use_slice ? slice : deadline, sys::Interruptible::yes);
        } catch (const KeyboardInterrupt&) {
            // Python's Barrier.wait breaks the barrier on any exception: the others must not
            // wait for a party that has left.
            BarrierGuard lk(&st_->m);
            if (st_->gen.load(std::memory_order_relaxed) == g) break_locked(st_);
            throw;
        }
        if (st_->gen.load(std::memory_order_acquire) != g) {
            BarrierGuard lk(&st_->m);
            if (st_->broke_bits & gen_bit(g))
                throw BrokenBarrierError("multiproc: the Barrier was broken while waiting");
            return index;
        }
        if (woke) continue;
        if (!use_slice) {
            BarrierGuard lk(&st_->m);
            if (st_->gen.load(std::memory_order_relaxed) != g) {
                if (st_->broke_bits & gen_bit(g))
                    throw BrokenBarrierError("multiproc: the Barrier was broken while waiting");
                return index;
            }
            break_locked(st_);
            throw BrokenBarrierError(
                "multiproc: Barrier wait timed out (the barrier is now broken)");
        }
        const int r = detail::mutex_lock(&st_->m, detail::Deadline::never(), true);
        if (r == 1) continue;  // held by a live process: keep waiting
        if (r == 2 && st_->gen.load(std::memory_order_relaxed) == g) break_locked(st_);
        detail::mutex_unlock(&st_->m);
    }
}

void Barrier::reset() {
    BarrierGuard lk(&st_->m);
    if (st_->count > 0 || lk.owner_died) break_locked(st_);
    st_->broken = 0;
    st_->count = 0;
}

void Barrier::abort() {
    BarrierGuard lk(&st_->m);
    break_locked(st_);
}

unsigned Barrier::parties() const noexcept { return st_->parties; }

unsigned Barrier::n_waiting() const noexcept {
    return __atomic_load_n(&st_->count, __ATOMIC_RELAXED);
}

bool Barrier::broken() const noexcept {
    return __atomic_load_n(&st_->broken, __ATOMIC_RELAXED) != 0;
}

}  // namespace mp
