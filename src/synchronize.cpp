// Locks, semaphores, events, conditions and barriers in shared arenas.
//
// Lock/RLock: a robust, process-shared, error-checking pthread mutex (the kernel walks a dead
// thread's robust list and hands the next locker EOWNERDEAD), plus the owner's token and the
// recursion depth kept beside it. The token, not the thread id, identifies the owner: thread
// ids are reused, and a forked child's thread must not believe it holds its parent's lock.
// Everything else is a 32-bit futex word: waiters sleep in the kernel's futex queues, not in
// shared memory, so a waiter that dies leaves no state behind for others to trip on.
#include "multiproc/synchronize.hpp"

#include <pthread.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <new>

#include "multiproc/callable.hpp"
#include "sys/futex.hpp"
#include "sys/syscall.hpp"

namespace mp {
namespace detail {
namespace {

std::atomic<std::uint64_t> g_token_seed{0};
// initial-exec: the library is built -fPIC, and the default TLS model would cost a
// __tls_get_addr call on every lock and unlock.
__attribute__((tls_model("initial-exec"))) thread_local std::uint64_t t_token = 0;

std::uint64_t random_u64() {
    std::uint64_t v = 0;
    while (sys::retry_eintr([&] { return ::getrandom(&v, sizeof v, 0); }) != sizeof v) {
    }
    return v;
}

void reset_tokens_after_fork() {
    // The child's only thread is a copy of the forking thread, which may hold locks in the
    // parent; it needs a token of its own. Other threads' tokens do not exist in the child.
    g_token_seed.store(0, std::memory_order_relaxed);
    t_token = 0;
}

// A token unique to this thread of this process (a random process seed, then a counter).
std::uint64_t thread_token() {
    if (t_token) return t_token;
    static const bool registered = [] {
        ::pthread_atfork(nullptr, nullptr, reset_tokens_after_fork);
        return true;
    }();
    (void)registered;
    std::uint64_t seed = g_token_seed.load(std::memory_order_relaxed);
    if (!seed) {
        std::uint64_t fresh = random_u64() | 1;
        if (!g_token_seed.compare_exchange_strong(seed, fresh)) fresh = seed;
        seed = fresh;
    }
    static std::atomic<std::uint64_t> counter{0};
    std::uint64_t t = seed + (counter.fetch_add(1, std::memory_order_relaxed) + 1) * 0x9e3779b97f4a7c15ULL;
    if (!t) t = 1;
    t_token = t;
    return t;
}

timespec to_timespec(Deadline::clock::time_point at) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    return ts;
}

// Sleeps until the deadline (never returns for a deadline of forever).
void sleep_until(Deadline deadline) {
    if (deadline.is_forever()) {
        for (;;) ::pause();
    }
    const timespec ts = to_timespec(*deadline.at());
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}

const char* const kOwnerDied =
    "multiproc: the previous holder of this lock died while holding it; the caller now holds "
    "the lock and should repair the state it protects (the lock stays usable)";

}  // namespace

struct MutexState {
    pthread_mutex_t m;
    std::atomic<std::uint64_t> owner;  // token of the holding thread, 0 when free
    std::uint32_t depth;               // written only by the holder
    std::uint32_t recursive;
};

namespace {

void init_mutex(MutexState* st, bool recursive) {
    pthread_mutexattr_t a;
    ::pthread_mutexattr_init(&a);
    ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    ::pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    int r = ::pthread_mutex_init(&st->m, &a);
    ::pthread_mutexattr_destroy(&a);
    if (r) throw_os_error("pthread_mutex_init", r);
    st->owner.store(0, std::memory_order_relaxed);
    st->depth = 0;
    st->recursive = recursive ? 1 : 0;
}

// 0: acquired; 1: not acquired (busy or timed out); 2: acquired after the owner died.
int mutex_lock(MutexState* st, Deadline deadline, bool try_only) {
    int r;
    if (try_only) {
        r = ::pthread_mutex_trylock(&st->m);
    } else if (deadline.is_forever()) {
        r = ::pthread_mutex_lock(&st->m);
    } else {
        const timespec ts = to_timespec(*deadline.at());
        r = ::pthread_mutex_clocklock(&st->m, CLOCK_MONOTONIC, &ts);
    }
    switch (r) {
        case 0: return 0;
        case EBUSY:
        case ETIMEDOUT: return 1;
        case EOWNERDEAD:
            // Made consistent at once: whatever the catcher does (even dying), the lock
            // itself stays usable; repairing the protected state is the catcher's business.
            ::pthread_mutex_consistent(&st->m);
            return 2;
        default: throw_os_error("pthread_mutex_lock", r);
    }
}

void mutex_unlock(MutexState* st) {
    int r = ::pthread_mutex_unlock(&st->m);
    if (r) throw_os_error("pthread_mutex_unlock", r);
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
    if (b.size() < sizeof(MutexState)) throw DecodeError("multiproc: corrupt message: lock block too small");
    block_ = std::move(b);
    st_ = static_cast<MutexState*>(block_.data());
}

bool LockBase::is_owned() const noexcept {
    return st_->owner.load(std::memory_order_relaxed) == thread_token();
}

bool LockBase::try_lock() {
    return acquire_until(Deadline(Timeout(std::chrono::nanoseconds(0))));
}

bool LockBase::acquire_until(Deadline deadline) {
    const std::uint64_t me = thread_token();
    if (st_->owner.load(std::memory_order_relaxed) == me) {
        if (st_->recursive) {
            ++st_->depth;
            return true;
        }
        if (deadline.is_forever())
            throw UsageError("multiproc: Lock acquired again by the thread that holds it: this "
                             "would deadlock (use an RLock to acquire recursively)");
        sleep_until(deadline);
        return false;
    }
    const bool try_only = !deadline.is_forever() && deadline.expired();
    const int r = mutex_lock(st_, deadline, try_only);
    if (r == 1) return false;
    st_->owner.store(me, std::memory_order_relaxed);
    st_->depth = 1;
    if (r == 2) throw OwnerDied(kOwnerDied);
    return true;
}

void LockBase::release() {
    if (st_->owner.load(std::memory_order_relaxed) != thread_token())
        throw UsageError(st_->recursive
                             ? "multiproc: cannot release an RLock the calling thread does not hold"
                             : "multiproc: cannot release a Lock the calling thread does not hold "
                               "(it is unlocked, or held by another thread or process)");
    if (--st_->depth > 0) return;
    st_->owner.store(0, std::memory_order_relaxed);
    mutex_unlock(st_);
}

unsigned LockBase::release_all() {
    if (st_->owner.load(std::memory_order_relaxed) != thread_token())
        throw UsageError("multiproc: Condition: the calling thread does not hold the lock");
    const unsigned depth = st_->depth;
    st_->depth = 0;
    st_->owner.store(0, std::memory_order_relaxed);
    mutex_unlock(st_);
    return depth;
}

void LockBase::reacquire(unsigned depth) {
    const int r = mutex_lock(st_, Deadline::never(), false);
    st_->owner.store(thread_token(), std::memory_order_relaxed);
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
    if (b.size() < sizeof(State)) throw DecodeError("multiproc: corrupt message: semaphore block too small");
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
        if (v == 0) in_time = sys::futex_wait(st_->value, 0, deadline);
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

unsigned Semaphore::get_value() const noexcept { return st_->value.load(std::memory_order_relaxed); }

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
    if (b.size() < sizeof(State)) throw DecodeError("multiproc: corrupt message: event block too small");
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
    if (is_set()) return true;
    const detail::Deadline deadline(timeout);
    st_->waiters.fetch_add(1, std::memory_order_seq_cst);
    while (st_->flag.load(std::memory_order_seq_cst) == 0) {
        if (!sys::futex_wait(st_->flag, 0, deadline)) break;
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
    : lock_(std::move(lock)),
      recursive_(recursive),
      block_(detail::SharedBlock::allocate(sizeof(State), alignof(State))),
      st_(new (block_.data()) State) {
    st_->seq.store(0, std::memory_order_relaxed);
    st_->waiters.store(0, std::memory_order_relaxed);
}

void Condition::save(Encoder& e) const { e(lock_, recursive_, block_); }

void Condition::load(Decoder& d) {
    detail::SharedBlock b;
    d(lock_, recursive_, b);
    if (b.size() < sizeof(State)) throw DecodeError("multiproc: corrupt message: condition block too small");
    block_ = std::move(b);
    st_ = static_cast<State*>(block_.data());
}

bool Condition::wait_until(detail::Deadline deadline) {
    if (!lock_.is_owned())
        throw UsageError("multiproc: cannot wait on a Condition whose lock the caller does not hold");
    // Read the sequence while holding the lock: a notify (which needs the lock) after this
    // point changes it, and the futex wait below then returns at once instead of sleeping.
    const std::uint32_t seq = st_->seq.load(std::memory_order_seq_cst);
    st_->waiters.fetch_add(1, std::memory_order_seq_cst);
    const unsigned depth = lock_.release_all();
    bool in_time = true;
    try {
        in_time = sys::futex_wait(st_->seq, seq, deadline);
    } catch (...) {
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
        throw UsageError("multiproc: cannot notify on a Condition whose lock the caller does not hold");
    if (n == 0 || !st_->waiters.load(std::memory_order_seq_cst)) return;
    st_->seq.fetch_add(1, std::memory_order_seq_cst);
    sys::futex_wake(st_->seq, n > INT_MAX ? INT_MAX : static_cast<int>(n));
}

void Condition::notify_all() {
    if (!lock_.is_owned())
        throw UsageError("multiproc: cannot notify on a Condition whose lock the caller does not hold");
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
    std::uint32_t count;             // arrived in this round
    std::uint32_t broken;
    std::uint64_t broke_bits;        // bit (g % 64): round g ended by breaking, not completing
    std::int64_t timeout_ns;         // the default timeout, -1 for forever
};

namespace {

constexpr auto kDeathPoll = std::chrono::milliseconds(250);

std::uint64_t gen_bit(std::uint32_t g) { return std::uint64_t{1} << (g % 64); }

}  // namespace

Barrier::Barrier(unsigned parties, Action action, Timeout timeout)
    : block_(detail::SharedBlock::allocate(sizeof(State), alignof(State))),
      st_(new (block_.data()) State),
      action_(std::move(action)) {
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
    if (b.size() < sizeof(State)) throw DecodeError("multiproc: corrupt message: barrier block too small");
    block_ = std::move(b);
    st_ = static_cast<State*>(block_.data());
    action_ = Action{};
    bool has_fn = false;
    d(has_fn);
    if (has_fn) action_.fn = reinterpret_cast<void (*)()>(detail::resolve_code_address(d));
}

void Barrier::save(Encoder& e) const {
    e(block_);
    e(action_.fn != nullptr);
    if (action_.fn) detail::encode_code_address(e, detail::code_address(action_.fn));
}

detail::Deadline Barrier::default_deadline() const {
    const std::int64_t ns = st_->timeout_ns;
    return ns < 0 ? detail::Deadline::never() : detail::Deadline(Timeout(std::chrono::nanoseconds(ns)));
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
    ~BarrierGuard() { ::pthread_mutex_unlock(&m->m); }
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
        const bool woke = sys::futex_wait(st_->gen, g, use_slice ? slice : deadline);
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
            throw BrokenBarrierError("multiproc: Barrier wait timed out (the barrier is now broken)");
        }
        const int r = detail::mutex_lock(&st_->m, detail::Deadline::never(), true);
        if (r == 1) continue;  // held by a live process: keep waiting
        if (r == 2 && st_->gen.load(std::memory_order_relaxed) == g) break_locked(st_);
        ::pthread_mutex_unlock(&st_->m.m);
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

bool Barrier::broken() const noexcept { return __atomic_load_n(&st_->broken, __ATOMIC_RELAXED) != 0; }

}  // namespace mp
