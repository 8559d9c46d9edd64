// Signals as PEP 475 has them (DESIGN.md 12, docs/signals.md): every blocking call of the
// library completes normally while a 100 Hz SIGALRM timer with an SA_RESTART handler runs (as
// under a profiler or a watchdog), under every start method; Ctrl-C under mp::SigintGuard
// makes each blocking call throw mp::KeyboardInterrupt and leaves nothing half done; a SIGINT
// sent to a program's process group during Pool.map, with and without the guard, leaves no
// worker behind.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/multiproc.hpp"
#include "sys/pidfd.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A 100 Hz SIGALRM timer whose handler (SA_RESTART, as profilers and servers install it)
// counts the signals that landed.
std::atomic<int> g_alarms{0};

class Alarm100Hz {
public:
    Alarm100Hz() {
        g_alarms.store(0);
        struct sigaction sa {};
        sa.sa_handler = [](int) { g_alarms.fetch_add(1, std::memory_order_relaxed); };
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        ::sigaction(SIGALRM, &sa, &old_);
        itimerval it{{0, 10'000}, {0, 10'000}};
        ::setitimer(ITIMER_REAL, &it, nullptr);
    }
    ~Alarm100Hz() {
        itimerval off{};
        ::setitimer(ITIMER_REAL, &off, nullptr);
        ::sigaction(SIGALRM, &old_, nullptr);
    }
    Alarm100Hz(const Alarm100Hz&) = delete;
    Alarm100Hz& operator=(const Alarm100Hz&) = delete;
    /// Signals so far.
    static int count() { return g_alarms.load(); }

private:
    struct sigaction old_ {};
};

int slow_square(int x) {
    std::this_thread::sleep_for(100ms);
    return x * x;
}
int square(int x) { return x * x; }

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void hold_lock(mp::Lock l, mp::Event held, int ms) {
    std::scoped_lock lk(l);
    held.set();
    sleep_ms(ms);
}
void hold_rlock(mp::RLock l, mp::Event held, int ms) {
    std::scoped_lock lk(l);
    held.set();
    sleep_ms(ms);
}
void release_later(mp::Semaphore s, int ms) {
    sleep_ms(ms);
    s.release();
}
void set_later(mp::Event e, int ms) {
    sleep_ms(ms);
    e.set();
}
void notify_later(mp::Condition c, int ms) {
    sleep_ms(ms);
    std::scoped_lock lk(c);
    c.notify_all();
}
void barrier_later(mp::Barrier b, int ms) {
    sleep_ms(ms);
    static_cast<void>(b.wait());
}
void put_later(mp::Queue<int> q, int ms) {
    sleep_ms(ms);
    q.put(42);
}
void get_later(mp::Queue<int> q, int ms) {
    sleep_ms(ms);
    static_cast<void>(q.get());
}
void task_done_later(mp::JoinableQueue<int> q, int ms) {
    sleep_ms(ms);
    static_cast<void>(q.get());
    q.task_done();
}
void simple_put_later(mp::SimpleQueue<int> q, int ms) {
    sleep_ms(ms);
    q.put(42);
}
void send_later(mp::Connection c, int ms) {
    sleep_ms(ms);
    c.send(42);
    sleep_ms(ms);
    c.send_bytes(std::string_view("hello"));
}
void recv_slowly(mp::Connection c, int ms) {
    sleep_ms(ms);
    static_cast<void>(c.recv<std::string>());
    c.send(1);
}

int sleepy(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}

// Sends this process SIGINT from another thread after `after` (the kernel picks the thread
// that runs the handler: often not the one blocked in the call).
class SigintSoon {
public:
    explicit SigintSoon(std::chrono::milliseconds after = 100ms)
        : t_([after] {
              std::this_thread::sleep_for(after);
              ::kill(::getpid(), SIGINT);
          }) {}
    ~SigintSoon() { t_.join(); }
    SigintSoon(const SigintSoon&) = delete;
    SigintSoon& operator=(const SigintSoon&) = delete;

private:
    std::thread t_;
};

// call() blocks until a SIGINT under the guard makes it throw mp::KeyboardInterrupt.
template <class F>
void expect_interrupted(const char* what, F call) {
    SigintSoon soon;
    try {
        call();
        ADD_FAILURE() << what << ": returned instead of throwing mp::KeyboardInterrupt";
    } catch (const mp::KeyboardInterrupt&) {
    }
}

// A program of its own process group (the test runner is not in it): a Pool of two workers
// reports their pids, then maps slow tasks until a SIGINT to the group arrives. With the guard,
// map throws mp::KeyboardInterrupt and the pool must still work with the same workers.
void ctrl_c_program(mp::Connection report, std::string method, bool guard) {
    ::setpgid(0, 0);
    std::optional<mp::SigintGuard> g;
    if (guard) g.emplace();
    mp::PoolOptions o;
    o.context = mp::get_context(method);
    mp::Pool pool(2, o);
    const std::vector<pid_t> pids = pool.worker_pids();
    report.send(pids);
    try {
        static_cast<void>(pool.map(slow_square, std::vector<int>(60, 1), 1));  // 3 s
        report.send(std::string("map completed"));
        return;
    } catch (const mp::KeyboardInterrupt&) {
        report.send(std::string("interrupted"));
    }
    const bool usable = pool.map(square, std::vector<int>{1, 2, 3}) == std::vector<int>{1, 4, 9} &&
                        pool.worker_pids() == pids;
    report.send(std::string(usable ? "usable" : "not usable"));
}

// Every pid names a process that has ended (or ends within 10 s).
void expect_all_gone(const std::vector<pid_t>& pids) {
    for (pid_t pid : pids) {
        const int fd = mp::sys::pidfd_open_raw(pid);
        if (fd < 0) continue;  // ESRCH: gone and reaped
        pollfd p{fd, POLLIN, 0};
        EXPECT_EQ(::poll(&p, 1, 10'000), 1) << "worker " << pid << " outlived its program";
        ::close(fd);
    }
}

class SignalsTest : public mp::test::StartMethodTest {
protected:
    mp::PoolOptions pool_options() const {
        mp::PoolOptions o;
        o.context = ctx();
        return o;
    }
    // ctrl_c_program started in its own process group, its worker pids read, its map begun.
    struct GroupProgram {
        mp::Process p;
        mp::Connection report;
        std::vector<pid_t> pids;
    };
    GroupProgram start_program(bool guard) const {
        auto [mine, theirs] = mp::Pipe();
        auto p = start(ctrl_c_program, theirs, GetParam(), guard);
        theirs.close();
        auto pids = mine.recv<std::vector<pid_t>>();
        EXPECT_EQ(pids.size(), 2u);
        std::this_thread::sleep_for(300ms);  // well inside the 3 s map
        return {std::move(p), std::move(mine), std::move(pids)};
    }
    // At least ~10 signals landed during the test (a wait of 0.3 s or more at 100 Hz).
    static void expect_signals_landed() { EXPECT_GE(Alarm100Hz::count(), 10); }
};

// ---- a 100 Hz SIGALRM during every blocking call: each completes normally -------------------

TEST_P(SignalsTest, AlarmDuringPoolCalls) {
    Alarm100Hz alarm;
    mp::Pool pool(2, pool_options());
    EXPECT_EQ(pool.map(slow_square, std::vector<int>{1, 2, 3, 4, 5, 6}),
              (std::vector<int>{1, 4, 9, 16, 25, 36}));
    EXPECT_EQ(pool.apply(slow_square, 3), 9);
    auto a = pool.apply_async(slow_square, 4);
    EXPECT_TRUE(a.wait());
    EXPECT_EQ(a.get(), 16);
    auto b = pool.apply_async(slow_square, 5);
    EXPECT_EQ(b.get(10s), 25);
    std::vector<int> seen;
    for (int r : pool.imap(slow_square, std::vector<int>{1, 2, 3, 4}, 1)) seen.push_back(r);
    EXPECT_EQ(seen, (std::vector<int>{1, 4, 9, 16}));
    int sum = 0;
    for (int r : pool.imap_unordered(slow_square, std::vector<int>{1, 2, 3, 4}, 1)) sum += r;
    EXPECT_EQ(sum, 30);
    pool.close();
    pool.join();
    expect_signals_landed();
}

TEST_P(SignalsTest, AlarmDuringFutures) {
    Alarm100Hz alarm;
    mp::ExecutorOptions o;
    o.context = ctx();
    mp::ProcessPoolExecutor ex(2, o);
    auto f = ex.submit(slow_square, 3);
    EXPECT_TRUE(f.wait());
    EXPECT_EQ(f.result(), 9);
    std::vector<mp::Future<int>> fs;
    for (int i = 0; i < 6; ++i) fs.push_back(ex.submit(slow_square, i));
    int sum = 0;
    for (mp::Future<int>& done : mp::as_completed(fs)) sum += done.result();
    EXPECT_EQ(sum, 55);
    std::vector<mp::Future<int>> more;
    for (int i = 0; i < 4; ++i) more.push_back(ex.submit(slow_square, i));
    EXPECT_TRUE(mp::wait(more).not_done.empty());
    EXPECT_EQ(ex.submit(slow_square, 6).result(10s), 36);
    ex.shutdown(true);
    expect_signals_landed();
}

TEST_P(SignalsTest, AlarmDuringParallelMap) {
    Alarm100Hz alarm;
    mp::ParallelOptions o;
    o.jobs = 2;
    o.context = ctx();
    EXPECT_EQ(mp::parallel_map(slow_square, std::vector<int>{1, 2, 3, 4, 5, 6}, o),
              (std::vector<int>{1, 4, 9, 16, 25, 36}));
    expect_signals_landed();
}

TEST_P(SignalsTest, AlarmDuringProcessJoin) {
    Alarm100Hz alarm;
    auto p = start(sleep_ms, 400);
    p.join();
    EXPECT_EQ(p.exitcode(), std::optional<int>(0));
    auto q = start(sleep_ms, 400);
    p = std::move(q);
    p.join(30s);
    EXPECT_EQ(p.exitcode(), std::optional<int>(0));
    expect_signals_landed();
}

TEST_P(SignalsTest, AlarmDuringLocks) {
    Alarm100Hz alarm;
    {
        mp::Lock l;
        mp::Event held;
        auto p = start(hold_lock, l, held, 400);
        ASSERT_TRUE(held.wait(30s));
        EXPECT_TRUE(l.acquire());
        l.release();
        join_ok(p);
    }
    {
        mp::RLock l;
        mp::Event held;
        auto p = start(hold_rlock, l, held, 400);
        ASSERT_TRUE(held.wait(30s));
        EXPECT_TRUE(l.acquire(30s));
        l.release();
        join_ok(p);
    }
    {
        mp::Semaphore s(0);
        auto p = start(release_later, s, 400);
        EXPECT_TRUE(s.acquire());
        join_ok(p);
    }
    expect_signals_landed();
}

TEST_P(SignalsTest, AlarmDuringConditionEventBarrier) {
    Alarm100Hz alarm;
    {
        mp::Event e;
        auto p = start(set_later, e, 400);
        EXPECT_TRUE(e.wait());
        join_ok(p);
    }
    {
        mp::Condition c;
        std::unique_lock lk(c);
        auto p = start(notify_later, c, 400);
        EXPECT_TRUE(c.wait(30s));
        lk.unlock();
        join_ok(p);
    }
    {
        mp::Barrier b(2);
        auto p = start(barrier_later, b, 400);
        static_cast<void>(b.wait());
        join_ok(p);
    }
    expect_signals_landed();
}

TEST_P(SignalsTest, AlarmDuringQueues) {
    Alarm100Hz alarm;
    {
        mp::Queue<int> q;
        auto p = start(put_later, q, 400);
        EXPECT_EQ(q.get(), 42);
        join_ok(p);
    }
    {
        mp::Queue<int> q(1);
        q.put(1);
        auto p = start(get_later, q, 400);
        q.put(2);  // waits for the child to make room
        EXPECT_EQ(q.get(), 2);
        join_ok(p);
    }
    {
        mp::JoinableQueue<int> q;
        q.put(1);
        auto p = start(task_done_later, q, 400);
        q.join();
        join_ok(p);
    }
    {
        mp::SimpleQueue<int> q;
        auto p = start(simple_put_later, q, 400);
        EXPECT_EQ(q.get(), 42);
        join_ok(p);
    }
    expect_signals_landed();
}

TEST_P(SignalsTest, AlarmDuringConnections) {
    Alarm100Hz alarm;
    {
        auto [a, b] = mp::Pipe();
        auto p = start(send_later, b, 200);
        EXPECT_TRUE(a.poll(30s));
        EXPECT_EQ(a.recv<int>(), 42);
        std::vector<mp::Waitable> ws{mp::Waitable(a)};
        EXPECT_EQ(mp::wait(ws), std::vector<std::size_t>{0});
        const auto bytes = a.recv_bytes();
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()), "hello");
        join_ok(p);
    }
    {
        // A message far bigger than the socket buffer: send blocks until the child reads.
        auto [a, b] = mp::Pipe();
        auto p = start(recv_slowly, b, 400);
        a.send(std::string(std::size_t{16} << 20, 'x'));
        EXPECT_EQ(a.recv<int>(), 1);
        join_ok(p);
    }
    expect_signals_landed();
}

// ---- Ctrl-C ------------------------------------------------------------------------------------

TEST_P(SignalsTest, CtrlCToTheGroupDuringMapWithGuard) {
    GroupProgram g = start_program(true);
    const auto t0 = Clock::now();
    ASSERT_EQ(::kill(-*g.p.pid(), SIGINT), 0);
    auto& [p, mine, pids] = g;
    EXPECT_EQ(mine.recv<std::string>(), "interrupted");
    const auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    std::printf("map interrupted %lld ms after the SIGINT\n",
                static_cast<long long>(latency.count()));
    EXPECT_LT(latency, 2s);  // generous on a loaded machine; the map alone takes 3 s
    EXPECT_EQ(mine.recv<std::string>(), "usable");
    join_ok(p);
    expect_all_gone(pids);
}

TEST_P(SignalsTest, CtrlCToTheGroupWithoutGuardKillsTheProgramAndItsWorkers) {
    GroupProgram g = start_program(false);
    ASSERT_EQ(::kill(-*g.p.pid(), SIGINT), 0);
    auto& [p, mine, pids] = g;
    p.join(60s);
    EXPECT_EQ(p.exitcode(), std::optional<int>(-SIGINT));  // the default disposition
    EXPECT_THROW(static_cast<void>(mine.recv<std::string>()), mp::EOFError);
    expect_all_gone(pids);
}

TEST_P(SignalsTest, CtrlCInterruptsEveryBlockingCallAndLeavesNothingHalfDone) {
    mp::SigintGuard guard;
    {
        mp::Pool pool(2, pool_options());
        expect_interrupted("Pool::map", [&] { pool.map(sleepy, std::vector<int>(8, 1000), 1); });
        EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
        auto a = pool.apply_async(sleepy, 1000);
        expect_interrupted("AsyncResult::get", [&] { a.get(); });
        expect_interrupted("AsyncResult::wait", [&] { a.wait(); });
        EXPECT_EQ(a.get(), 1000);  // the result was not lost
        auto it = pool.imap(sleepy, std::vector<int>{1000, 1}, 1);
        expect_interrupted("imap next", [&] { it.next(); });
        EXPECT_EQ(it.next(), std::optional<int>(1000));  // the item was not skipped
        EXPECT_EQ(it.next(), std::optional<int>(1));
    }
    {
        mp::ExecutorOptions o;
        o.context = ctx();
        mp::ProcessPoolExecutor ex(1, o);
        std::vector<mp::Future<int>> fs{ex.submit(sleepy, 1000)};
        expect_interrupted("Future::result", [&] { fs[0].result(); });
        expect_interrupted("as_completed", [&] {
            for (auto& f : mp::as_completed(fs)) static_cast<void>(f);
        });
        expect_interrupted("futures wait", [&] { mp::wait(fs); });
        EXPECT_EQ(fs[0].result(), 1000);
        mp::ParallelOptions po;
        po.jobs = 2;
        po.context = ctx();
        expect_interrupted("parallel_map",
                           [&] { mp::parallel_map(sleepy, std::vector<int>(4, 1000), po); });
    }
    {
        auto p = start(sleep_ms, 1000);
        expect_interrupted("Process::join", [&] { p.join(); });
        EXPECT_TRUE(p.is_alive() || !p.exitcode());
        join_ok(p);
    }
    {
        mp::Lock l;
        mp::Event held;
        auto p = start(hold_lock, l, held, 1000);
        ASSERT_TRUE(held.wait(30s));
        expect_interrupted("Lock::acquire", [&] { l.acquire(); });
        EXPECT_TRUE(l.acquire(30s));  // not held by us before: acquiring now works
        l.release();
        join_ok(p);
        l.acquire();
        expect_interrupted("Lock::acquire by its holder, with a timeout", [&] { l.acquire(30s); });
        l.release();
        mp::Semaphore s(0);
        expect_interrupted("Semaphore::acquire", [&] { s.acquire(); });
        s.release();
        EXPECT_TRUE(s.acquire(false));
        EXPECT_FALSE(s.acquire(false));
        mp::Event e;
        expect_interrupted("Event::wait", [&] { e.wait(); });
        mp::Condition c;
        c.acquire();
        expect_interrupted("Condition::wait", [&] { c.wait(); });
        EXPECT_NO_THROW(c.release());  // the wait gave the lock back before throwing
        mp::Barrier b(2);
        expect_interrupted("Barrier::wait", [&] { b.wait(); });
        EXPECT_TRUE(b.broken());  // as Python's: the others must not wait for a party that left
    }
    {
        mp::Queue<int> q;
        expect_interrupted("Queue::get", [&] { q.get(); });
        q.put(5);
        EXPECT_EQ(q.get(), 5);
        mp::Queue<int> full(1);
        full.put(1);
        expect_interrupted("Queue::put", [&] { full.put(2); });
        EXPECT_EQ(full.qsize(), 1u);
        EXPECT_EQ(full.get(), 1);
        mp::JoinableQueue<int> jq;
        jq.put(1);
        expect_interrupted("JoinableQueue::join", [&] { jq.join(); });
        mp::SimpleQueue<int> sq;
        expect_interrupted("SimpleQueue::get", [&] { sq.get(); });
    }
    {
        auto pipe = mp::Pipe();
        mp::Connection& a = pipe.first;
        mp::Connection& b = pipe.second;
        expect_interrupted("Connection::recv", [&] { a.recv<int>(); });
        expect_interrupted("Connection::recv_bytes", [&] { a.recv_bytes(); });
        expect_interrupted("Connection::poll", [&] { static_cast<void>(a.poll(mp::forever)); });
        std::vector<mp::Waitable> ws{mp::Waitable(a)};
        expect_interrupted("connection wait", [&] { mp::wait(ws); });
        b.send(7);
        EXPECT_EQ(a.recv<int>(), 7);  // the stream is intact
    }
}

TEST(Signals, KeyboardInterruptIsNotAProcessError) {
    static_assert(std::is_base_of_v<std::exception, mp::KeyboardInterrupt>);
    static_assert(!std::is_base_of_v<mp::ProcessError, mp::KeyboardInterrupt>);
    static_assert(!std::is_base_of_v<std::runtime_error, mp::KeyboardInterrupt>);
    EXPECT_STREQ(mp::KeyboardInterrupt().what(), "KeyboardInterrupt");
}

TEST(Signals, PendingSigintIsOneExceptionAndTheGuardRestoresTheDisposition) {
    struct sigaction before {};
    ::sigaction(SIGINT, nullptr, &before);
    {
        mp::SigintGuard guard;
        ::kill(::getpid(), SIGINT);
        EXPECT_THROW(mp::throw_if_interrupted(), mp::KeyboardInterrupt);
        EXPECT_NO_THROW(mp::throw_if_interrupted());  // consumed
        mp::Event e;
        EXPECT_FALSE(e.wait(50ms));  // no SIGINT pending: a normal timeout
    }
    struct sigaction after {};
    ::sigaction(SIGINT, nullptr, &after);
    EXPECT_EQ(after.sa_handler, before.sa_handler);
    EXPECT_NO_THROW(mp::throw_if_interrupted());  // without a guard, never
}

// The number of descriptors this process holds.
std::size_t open_fd_count() {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        static_cast<void>(e);
        ++n;
    }
    return n;
}

// A get() that blocks holds no descriptor of its own (results wake their waiters through a
// futex, which signals do not fail and Ctrl-C under a guard interrupts, as the tests above
// check): threads waiting on results cost no descriptor each.
TEST(Signals, ABlockedGetHoldsNoDescriptor) {
    mp::Pool pool(1);
    ASSERT_EQ(pool.apply(square, 3), 9);  // the worker is up: its descriptors are counted below
    auto r = pool.apply_async(sleepy, 300);
    const std::size_t before = open_fd_count();
    std::atomic<bool> done{false};
    std::thread getter([&] {
        EXPECT_EQ(r.get(), 300);
        done.store(true);
    });
    std::size_t most = before;
    while (!done.load()) {
        most = std::max(most, open_fd_count());
        sleep_ms(1);
    }
    getter.join();
    EXPECT_EQ(most, before);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, SignalsTest,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
