// Rows: locks, a counter shared by two processes, Event ping-pong.
//
//   lock_uncontended   one acquire + release of a lock nobody else touches.
//                      multiproc: mp::Lock lock()/unlock(); raw: a process-shared (not robust)
//                      pthread mutex in a MAP_SHARED mapping; robust: the same with
//                      PTHREAD_MUTEX_ROBUST (what the owner-death guarantee costs in glibc);
//                      python: multiprocessing.Lock acquire()/release().
//   counter_2proc      two forked children increment one shared counter under its lock; one
//                      iteration is one increment (each child does half). The parent releases
//                      both with a go byte, starts the clock, and stops it when both have
//                      reported done. multiproc: mp::Value<int> and its get_lock() (an RLock,
//                      as Python's Value); raw: an int and a process-shared pthread mutex;
//                      python: Value('i') and `with v.get_lock(): v.value += 1`.
//   event_pingpong     a round trip: the parent sets `ping` and waits for `pong`; the child
//                      waits for `ping`, clears it and sets `pong`; the parent clears `pong`.
//                      multiproc: two mp::Event; raw: one futex word that the two sides flip
//                      (store, FUTEX_WAKE, FUTEX_WAIT while unchanged): the least a wake-up
//                      between processes costs; python: two multiprocessing.Event.
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <new>

#include "harness.hpp"
#include "multiproc/sharedctypes.hpp"
#include "multiproc/synchronize.hpp"
#include "raw.hpp"

namespace bench {
namespace {

BENCH_REGISTER(add_row({
    .name = "lock_uncontended",
    .what = "uncontended Lock acquire + release",
    .kind = Kind::latency,
    .unit = "ns",
    .scale = 1e9,
    .probe_iters = 200000,
    .goal = {"raw", Goal::at_most, 1.2},
}));
BENCH_REGISTER(add_row({
    .name = "counter_2proc",
    .what =
        "2 processes incrementing one shared counter under its lock (one increment an iteration)",
    .kind = Kind::throughput,
    .unit = "incr/s",
    .probe_iters = 200000,
    .goal = {"raw", Goal::at_least, 0.5},
}));
BENCH_REGISTER(add_row({
    .name = "event_pingpong",
    .what = "Event round trip between two processes (set, the peer wakes and answers)",
    .kind = Kind::latency,
    .unit = "us",
    .scale = 1e6,
    .probe_iters = 2000,
    .goal = {"raw", Goal::at_most, 1.3},
}));

// ---- raw helpers: an anonymous shared mapping, process-shared pthread mutexes, futexes ----

template <class T>
class SharedObject {
public:
    SharedObject() {
        void* p =
            ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) fail_errno("mmap");
        obj_ = new (p) T();
    }
    ~SharedObject() { ::munmap(obj_, sizeof(T)); }
    SharedObject(const SharedObject&) = delete;
    SharedObject& operator=(const SharedObject&) = delete;
    T* operator->() const { return obj_; }
    T& operator*() const { return *obj_; }

private:
    T* obj_ = nullptr;
};

void init_pshared_mutex(pthread_mutex_t* m, bool robust) {
    pthread_mutexattr_t a;
    ::pthread_mutexattr_init(&a);
    ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (robust) ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    const int r = ::pthread_mutex_init(m, &a);
    ::pthread_mutexattr_destroy(&a);
    if (r) fail("pthread_mutex_init failed");
}

void futex_wait(std::atomic<std::uint32_t>* w, std::uint32_t expected) {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), FUTEX_WAIT, expected, nullptr,
              nullptr, 0);
}
void futex_wake(std::atomic<std::uint32_t>* w) {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

// ---- lock_uncontended ----

template <class L>
double time_lock(L& l, const Run& run) {
    for (std::uint64_t i = 0; i < run.warmup; ++i) {
        l.lock();
        l.unlock();
    }
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) {
        l.lock();
        l.unlock();
    }
    return clock.seconds();
}

struct PthreadLock {
    pthread_mutex_t m;
    void lock() {
        if (::pthread_mutex_lock(&m)) fail("pthread_mutex_lock failed");
    }
    void unlock() { ::pthread_mutex_unlock(&m); }
};

double raw_lock(const Run& run) {
    SharedObject<PthreadLock> l;
    init_pshared_mutex(&l->m, false);
    return time_lock(*l, run);
}

double robust_lock(const Run& run) {
    SharedObject<PthreadLock> l;
    init_pshared_mutex(&l->m, true);
    return time_lock(*l, run);
}

double mp_lock(const Run& run) {
    mp::Lock l;
    return time_lock(l, run);
}

BENCH_REGISTER(add_impl("lock_uncontended", "multiproc", mp_lock));
BENCH_REGISTER(add_impl("lock_uncontended", "raw", raw_lock));
BENCH_REGISTER(add_impl("lock_uncontended", "robust", robust_lock));

// ---- counter_2proc ----

// Forks two children that each run warm-up increments, wait for the go byte, run their half of
// the timed increments and report done; returns the seconds from go to both done.
template <class F>
double two_incrementers(const Run& run, F increment) {
    raw::Fd go_r, go_w, done_r, done_w;
    {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) == -1) fail_errno("pipe2");
        go_r = raw::Fd(p[0]);
        go_w = raw::Fd(p[1]);
        if (::pipe2(p, O_CLOEXEC) == -1) fail_errno("pipe2");
        done_r = raw::Fd(p[0]);
        done_w = raw::Fd(p[1]);
    }
    const std::uint64_t halves[2] = {run.iters / 2, run.iters - run.iters / 2};
    pid_t pids[2];
    for (int c = 0; c < 2; ++c) {
        pids[c] = raw::fork_child([&, c] {
            for (std::uint64_t i = 0; i < run.warmup / 2; ++i) increment();
            char b;
            raw::read_full(go_r.get(), &b, 1);
            for (std::uint64_t i = 0; i < halves[c]; ++i) increment();
            raw::write_all(done_w.get(), &b, 1);
        });
    }
    done_w.close();
    go_r.close();
    const char go[2] = {'g', 'g'};
    Stopwatch clock;
    raw::write_all(go_w.get(), go, 2);
    char dones[2];
    raw::read_full(done_r.get(), dones, 2);
    const double seconds = clock.seconds();
    for (pid_t pid : pids) raw::wait_child(pid);
    return seconds;
}

struct RawCounter {
    pthread_mutex_t m;
    int value;
};

double raw_counter(const Run& run) {
    SharedObject<RawCounter> c;
    init_pshared_mutex(&c->m, false);
    RawCounter* p = &*c;
    const double s = two_incrementers(run, [p] {
        ::pthread_mutex_lock(&p->m);
        p->value += 1;
        ::pthread_mutex_unlock(&p->m);
    });
    if (static_cast<std::uint64_t>(p->value) != run.iters + (run.warmup / 2) * 2)
        fail("raw counter: wrong count");
    return s;
}

double mp_counter(const Run& run) {
    mp::Value<int> v(0);
    const double s = two_incrementers(run, [&v] {
        std::scoped_lock lk(v.get_lock());
        v.value() += 1;
    });
    if (static_cast<std::uint64_t>(v.value()) != run.iters + (run.warmup / 2) * 2)
        fail("multiproc counter: wrong count");
    return s;
}

BENCH_REGISTER(add_impl("counter_2proc", "multiproc", mp_counter));
BENCH_REGISTER(add_impl("counter_2proc", "raw", raw_counter));

// ---- event_pingpong ----

double raw_pingpong(const Run& run) {
    SharedObject<std::atomic<std::uint32_t>> turn;  // 1: the child's turn, 0: the parent's
    std::atomic<std::uint32_t>* w = &*turn;
    const std::uint64_t total = run.warmup + run.iters;
    pid_t pid = raw::fork_child([&] {
        for (std::uint64_t i = 0; i < total; ++i) {
            while (w->load(std::memory_order_acquire) == 0) futex_wait(w, 0);
            w->store(0, std::memory_order_release);
            futex_wake(w);
        }
    });
    auto once = [w] {
        w->store(1, std::memory_order_release);
        futex_wake(w);
        while (w->load(std::memory_order_acquire) == 1) futex_wait(w, 1);
    };
    for (std::uint64_t i = 0; i < run.warmup; ++i) once();
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) once();
    const double s = clock.seconds();
    raw::wait_child(pid);
    return s;
}

double mp_pingpong(const Run& run) {
    mp::Event ping, pong;
    const std::uint64_t total = run.warmup + run.iters;
    pid_t pid = raw::fork_child([&] {
        for (std::uint64_t i = 0; i < total; ++i) {
            ping.wait();
            ping.clear();
            pong.set();
        }
    });
    auto once = [&] {
        ping.set();
        pong.wait();
        pong.clear();
    };
    for (std::uint64_t i = 0; i < run.warmup; ++i) once();
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) once();
    const double s = clock.seconds();
    raw::wait_child(pid);
    return s;
}

BENCH_REGISTER(add_impl("event_pingpong", "multiproc", mp_pingpong));
BENCH_REGISTER(add_impl("event_pingpong", "raw", raw_pingpong));

}  // namespace
}  // namespace bench
