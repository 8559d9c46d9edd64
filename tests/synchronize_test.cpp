// Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier: their contract, in one
// process, then across real processes once per start method, with handles passed as Process
// arguments. What survivors see when a holder dies is in synchronize_owner_death_test.cpp.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "helpers/synchronize_fixture.hpp"
#include "multiproc/process.hpp"
#include "multiproc/sharedctypes.hpp"
#include "multiproc/synchronize.hpp"

namespace {

using namespace std::chrono_literals;
using namespace mp::test;  // SyncP, wait_for_go
using Clock = std::chrono::steady_clock;

// ---- compile-time contract -------------------------------------------------------------------

template <class L>
concept TimedLockable = requires(L& l) {
    l.lock();
    l.unlock();
    { l.try_lock() } -> std::convertible_to<bool>;
    { l.try_lock_for(1ms) } -> std::convertible_to<bool>;
    { l.try_lock_until(Clock::now()) } -> std::convertible_to<bool>;
};
static_assert(TimedLockable<mp::Lock> && TimedLockable<mp::RLock> && TimedLockable<mp::Semaphore>);
static_assert(mp::is_shippable_v<mp::Lock> && mp::is_shippable_v<mp::RLock> &&
              mp::is_shippable_v<mp::Semaphore> && mp::is_shippable_v<mp::BoundedSemaphore> &&
              mp::is_shippable_v<mp::Event> && mp::is_shippable_v<mp::Condition> &&
              mp::is_shippable_v<mp::Barrier>);
static_assert(std::is_base_of_v<mp::ProcessError, mp::BrokenBarrierError>);
static_assert(std::is_base_of_v<mp::ProcessError, mp::OwnerDied>);

// While alive, SIGALRM (no SA_RESTART) interrupts this process every 5 ms, so that every
// blocking system call keeps seeing EINTR.
class SignalStorm {
public:
    SignalStorm() {
        struct sigaction sa {};
        sa.sa_handler = [](int) {};
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        ::sigaction(SIGALRM, &sa, &old_);
        itimerval it{{0, 5000}, {0, 5000}};
        ::setitimer(ITIMER_REAL, &it, nullptr);
    }
    ~SignalStorm() {
        itimerval off{};
        ::setitimer(ITIMER_REAL, &off, nullptr);
        ::sigaction(SIGALRM, &old_, nullptr);
    }

private:
    struct sigaction old_ {};
};

// ---- single process --------------------------------------------------------------------------

TEST(Synchronize, LockBasics) {
    mp::Lock l;
    EXPECT_TRUE(l.acquire());
    EXPECT_FALSE(l.acquire(false));  // not recursive
    EXPECT_FALSE(l.acquire(10ms));
    EXPECT_THROW(l.acquire(), mp::UsageError);  // would deadlock forever
    l.release();
    EXPECT_THROW(l.release(), mp::UsageError);  // not held
    {
        std::scoped_lock lk(l);
        std::thread t([&] {
            EXPECT_FALSE(l.try_lock());
            EXPECT_THROW(l.release(), mp::UsageError);  // held by another thread
        });
        t.join();
    }
    EXPECT_TRUE(l.try_lock_until(std::chrono::system_clock::now() + 1s));
    l.unlock();
}

TEST(Synchronize, RLockReentrancyAndWrongOwner) {
    mp::RLock r;
    EXPECT_TRUE(r.acquire());
    EXPECT_TRUE(r.acquire());
    EXPECT_TRUE(r.try_lock());
    std::thread t([&] {
        EXPECT_FALSE(r.try_lock_for(20ms));
        EXPECT_THROW(r.release(), mp::UsageError);
    });
    t.join();
    r.release();
    r.release();
    r.release();
    EXPECT_THROW(r.release(), mp::UsageError);
    std::thread t2([&] {
        EXPECT_TRUE(r.try_lock());
        r.unlock();
    });
    t2.join();
}

TEST(Synchronize, SemaphoreCounts) {
    mp::Semaphore s(3);
    EXPECT_EQ(s.get_value(), 3u);
    EXPECT_TRUE(s.acquire());
    EXPECT_TRUE(s.acquire(false));
    EXPECT_TRUE(s.try_lock_for(1ms));
    EXPECT_EQ(s.get_value(), 0u);
    EXPECT_FALSE(s.acquire(false));
    EXPECT_FALSE(s.acquire(20ms));
    s.release();
    s.release();
    s.release();
    s.release();  // an unbounded semaphore may go above its start value
    EXPECT_EQ(s.get_value(), 4u);
}

TEST(Synchronize, BoundedSemaphoreOverRelease) {
    mp::BoundedSemaphore b(2);
    EXPECT_THROW(b.release(), mp::UsageError);
    EXPECT_TRUE(b.acquire());
    EXPECT_EQ(b.get_value(), 1u);
    b.release();
    EXPECT_EQ(b.get_value(), 2u);
    EXPECT_THROW(b.release(), mp::UsageError);
    EXPECT_EQ(b.get_value(), 2u);
}

TEST(Synchronize, EventBasics) {
    mp::Event e;
    EXPECT_FALSE(e.is_set());
    EXPECT_FALSE(e.wait(10ms));
    e.set();
    EXPECT_TRUE(e.is_set());
    EXPECT_TRUE(e.wait());
    EXPECT_TRUE(e.wait(0ms));
    e.clear();
    EXPECT_FALSE(e.wait(0ms));
}

TEST(Synchronize, ConditionNeedsItsLock) {
    mp::Condition c;
    EXPECT_THROW(c.wait(1ms), mp::UsageError);
    EXPECT_THROW(c.notify(), mp::UsageError);
    EXPECT_THROW(c.notify_all(), mp::UsageError);
    std::scoped_lock lk(c);
    EXPECT_FALSE(c.wait(10ms));  // nobody notifies: times out, lock held again
    EXPECT_NO_THROW(c.notify());
    {
        std::scoped_lock again(c);  // the default lock is an RLock
        EXPECT_FALSE(c.wait_for([] { return false; }, 10ms));
    }
    EXPECT_TRUE(c.wait_for([] { return true; }, 0ms));
}

TEST(Synchronize, ConditionOverAPlainLock) {
    mp::Lock l;
    mp::Condition c(l);
    std::scoped_lock lk(c);
    EXPECT_FALSE(l.try_lock());
    EXPECT_FALSE(c.wait(5ms));
}

TEST(Synchronize, BarrierSingleProcessStates) {
    mp::Barrier b(2, nullptr, 50ms);
    EXPECT_EQ(b.parties(), 2u);
    EXPECT_EQ(b.n_waiting(), 0u);
    EXPECT_FALSE(b.broken());
    EXPECT_THROW(b.wait(), mp::BrokenBarrierError);  // default timeout: the other never came
    EXPECT_TRUE(b.broken());
    EXPECT_THROW(b.wait(), mp::BrokenBarrierError);
    b.reset();
    EXPECT_FALSE(b.broken());
    b.abort();
    EXPECT_TRUE(b.broken());
    b.reset();
    mp::Barrier one(1);
    EXPECT_EQ(one.wait(), 0u);
    EXPECT_EQ(one.wait(), 0u);
    EXPECT_THROW(mp::Barrier(0), std::invalid_argument);
}

TEST(Synchronize, BarrierActionErrorBreaks) {
    mp::Barrier b(1, [] { throw std::runtime_error("action failed"); });
    EXPECT_THROW(b.wait(), std::runtime_error);
    EXPECT_TRUE(b.broken());
}

TEST(Synchronize, TimedWaitsSurviveSignals) {
    SignalStorm storm;
    mp::Lock l;
    mp::Semaphore s(0);
    mp::Event e;
    mp::Condition c;
    mp::Barrier b(2);
    std::thread holder([&] {
        std::scoped_lock lk(l);
        std::this_thread::sleep_for(600ms);
    });
    std::this_thread::sleep_for(50ms);
    const auto wait = 150ms;
    auto t0 = Clock::now();
    EXPECT_FALSE(l.try_lock_for(wait));
    EXPECT_GE(Clock::now() - t0, wait);
    t0 = Clock::now();
    EXPECT_FALSE(s.acquire(wait));
    EXPECT_GE(Clock::now() - t0, wait);
    t0 = Clock::now();
    EXPECT_FALSE(e.wait(wait));
    EXPECT_GE(Clock::now() - t0, wait);
    {
        std::scoped_lock lk(c);
        t0 = Clock::now();
        EXPECT_FALSE(c.wait(wait));
        EXPECT_GE(Clock::now() - t0, wait);
    }
    t0 = Clock::now();
    EXPECT_THROW(b.wait(wait), mp::BrokenBarrierError);
    EXPECT_GE(Clock::now() - t0, wait);
    holder.join();
}

// ---- across processes ------------------------------------------------------------------------

void count_under(mp::Lock l, mp::RawValue<long> v, int n) {
    for (int i = 0; i < n; ++i) {
        std::scoped_lock lk(l);
        v.value() += 1;
    }
}

TEST_P(SyncP, LockCounterIsExact) {
    mp::Lock l;
    mp::RawValue<long> v(0);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i) ps.push_back(start(count_under, l, v, 10'000));
    for (auto& p : ps) join_ok(p);
    EXPECT_EQ(v.value(), 40'000);
}

void hold_lock(mp::Lock l, mp::Event held, mp::Event done) {
    std::scoped_lock lk(l);
    held.set();
    if (!done.wait(30s)) std::exit(3);
}

void release_foreign(mp::Lock l) {
    mp::test::exit_by_usage_error([&] { l.release(); }, 4);
}

TEST_P(SyncP, LockTimeoutsAndForeignRelease) {
    mp::Lock l;
    mp::Event held, done;
    auto p = start(hold_lock, l, held, done);
    ASSERT_TRUE(held.wait(30s));
    EXPECT_FALSE(l.acquire(false));
    EXPECT_FALSE(l.try_lock());
    EXPECT_FALSE(l.acquire(50ms));
    EXPECT_FALSE(l.try_lock_for(20ms));
    EXPECT_THROW(l.release(), mp::UsageError);
    auto q = start(release_foreign, l);  // another process may not release it either
    join_ok(q);
    done.set();
    EXPECT_TRUE(l.acquire(30s));  // released by its owner on the way out
    l.release();
    join_ok(p);
}

void take_one(mp::Semaphore s, mp::RawValue<int> got) {
    if (!s.acquire(30s)) std::exit(2);
    __atomic_fetch_add(&got.value(), 1, __ATOMIC_SEQ_CST);
}

TEST_P(SyncP, SemaphoreAcrossProcesses) {
    mp::Semaphore s(1);
    mp::RawValue<int> got(0);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i) ps.push_back(start(take_one, s, got));
    // One unit: one child passes; the others wait until we release two more.
    while (__atomic_load_n(&got.value(), __ATOMIC_SEQ_CST) < 1) std::this_thread::sleep_for(1ms);
    s.release();
    s.release();
    for (auto& p : ps) join_ok(p);
    EXPECT_EQ(got.value(), 3);
    EXPECT_EQ(s.get_value(), 0u);
}

void over_release(mp::BoundedSemaphore b) {
    mp::test::exit_by_usage_error([&] { b.release(); }, 5);
}

TEST_P(SyncP, BoundedSemaphoreOverReleaseInChild) {
    mp::BoundedSemaphore b(1);
    auto p = start(over_release, b);
    join_ok(p);
    EXPECT_EQ(b.get_value(), 1u);
}

void wait_event(mp::Event e, mp::RawValue<int> waiting, mp::RawValue<int> woken) {
    __atomic_fetch_add(&waiting.value(), 1, __ATOMIC_SEQ_CST);
    if (!e.wait(30s)) std::exit(2);
    __atomic_fetch_add(&woken.value(), 1, __ATOMIC_SEQ_CST);
}

TEST_P(SyncP, EventWakesEveryWaiter) {
    mp::Event e;
    mp::RawValue<int> waiting(0), woken(0);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i) ps.push_back(start(wait_event, e, waiting, woken));
    while (__atomic_load_n(&waiting.value(), __ATOMIC_SEQ_CST) < 3)
        std::this_thread::sleep_for(1ms);
    EXPECT_EQ(woken.value(), 0);
    e.set();
    for (auto& p : ps) join_ok(p);
    EXPECT_EQ(woken.value(), 3);
}

// A bounded buffer of ints in shared memory: [0] count, [1] head, [2..] slots.
constexpr int kSlots = 4;
constexpr int kItems = 200;

void produce(mp::Condition c, mp::RawArray<int> buf, int first, int n) {
    for (int i = first; i < first + n; ++i) {
        std::scoped_lock lk(c);
        if (!c.wait_for([&] { return buf[0] < kSlots; }, 30s)) std::exit(2);
        buf[2 + (buf[1] + buf[0]) % kSlots] = i;
        ++buf[0];
        c.notify_all();
    }
}

void consume(mp::Condition c, mp::RawArray<int> buf, mp::RawArray<long> sums, int slot, int n) {
    for (int i = 0; i < n; ++i) {
        std::scoped_lock lk(c);
        if (!c.wait_for([&] { return buf[0] > 0; }, 30s)) std::exit(2);
        sums[static_cast<std::size_t>(slot)] += buf[2 + buf[1]];
        buf[1] = (buf[1] + 1) % kSlots;
        --buf[0];
        c.notify_all();
    }
}

TEST_P(SyncP, ConditionProducerConsumer) {
    mp::Condition c;
    mp::RawArray<int> buf(2 + kSlots);
    mp::RawArray<long> sums(2);
    std::vector<mp::Process> ps;
    ps.push_back(start(produce, c, buf, 0, kItems / 2));
    ps.push_back(start(produce, c, buf, kItems / 2, kItems / 2));
    ps.push_back(start(consume, c, buf, sums, 0, kItems / 2));
    ps.push_back(start(consume, c, buf, sums, 1, kItems / 2));
    for (auto& p : ps) join_ok(p);
    EXPECT_EQ(sums[0] + sums[1], long{kItems} * (kItems - 1) / 2);
    EXPECT_EQ(buf[0], 0);
}

TEST_P(SyncP, ConditionNotifyAndNotifyAll) {
    mp::Condition c;
    mp::RawValue<int> go(0), waiting(0);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i) ps.push_back(start(wait_for_go, c, go, waiting));
    for (;;) {
        std::scoped_lock lk(c);
        if (waiting.value() == 3) break;
        c.wait(1ms);
    }
    {
        std::scoped_lock lk(c);
        c.notify(1);  // the predicate is still false: whoever wakes sleeps again
    }
    {
        std::scoped_lock lk(c);
        go.value() = 1;
        c.notify_all();
    }
    for (auto& p : ps) join_ok(p);
}

void barrier_rounds(mp::Barrier b, mp::RawArray<int> seen, int who, int rounds) {
    for (int r = 0; r < rounds; ++r) {
        const unsigned idx = b.wait(30s);
        seen[static_cast<std::size_t>(r * 3 + who)] = static_cast<int>(idx);
    }
}

mp::RawValue<int>* g_action_count = nullptr;
void count_action() { __atomic_fetch_add(&g_action_count->value(), 1, __ATOMIC_SEQ_CST); }

void barrier_with_action(mp::Barrier b, mp::RawValue<int> actions, mp::RawArray<int> seen, int who,
                         int rounds) {
    g_action_count = &actions;
    barrier_rounds(b, seen, who, rounds);
}

TEST_P(SyncP, BarrierThreeProcessesSeveralRounds) {
    constexpr int kRounds = 5;
    mp::RawValue<int> actions(0);
    g_action_count = &actions;
    mp::Barrier b(3, count_action);
    mp::RawArray<int> seen(3 * kRounds);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i)
        ps.push_back(start(barrier_with_action, b, actions, seen, i, kRounds));
    for (auto& p : ps) join_ok(p);
    for (int r = 0; r < kRounds; ++r) {
        std::set<int> idx;
        for (int w = 0; w < 3; ++w) idx.insert(seen[static_cast<std::size_t>(r * 3 + w)]);
        EXPECT_EQ(idx, (std::set<int>{0, 1, 2})) << "round " << r;
    }
    EXPECT_EQ(actions.value(), kRounds);  // once per round, by one party
    g_action_count = nullptr;
}

void barrier_expect_broken(mp::Barrier b, mp::Event waiting) {
    waiting.set();
    try {
        (void)b.wait(30s);
    } catch (const mp::BrokenBarrierError&) {
        std::exit(0);
    }
    std::exit(7);
}

TEST_P(SyncP, BarrierAbortResetAndTimeout) {
    mp::Barrier b(3);
    mp::Event w1, w2;
    auto p1 = start(barrier_expect_broken, b, w1);
    auto p2 = start(barrier_expect_broken, b, w2);
    ASSERT_TRUE(w1.wait(30s));
    ASSERT_TRUE(w2.wait(30s));
    while (b.n_waiting() < 2) std::this_thread::sleep_for(1ms);
    b.abort();
    join_ok(p1);
    join_ok(p2);
    EXPECT_TRUE(b.broken());
    EXPECT_THROW(b.wait(1s), mp::BrokenBarrierError);
    b.reset();
    EXPECT_FALSE(b.broken());

    // reset() while parties wait: they see BrokenBarrierError; the barrier is usable after.
    mp::Event w3;
    auto p3 = start(barrier_expect_broken, b, w3);
    ASSERT_TRUE(w3.wait(30s));
    while (b.n_waiting() < 1) std::this_thread::sleep_for(1ms);
    b.reset();
    join_ok(p3);
    EXPECT_FALSE(b.broken());

    // A party that never comes: the others time out and the barrier breaks.
    mp::Event w4;
    auto p4 = start(barrier_expect_broken, b, w4);
    EXPECT_THROW(b.wait(200ms), mp::BrokenBarrierError);
    join_ok(p4);
    EXPECT_TRUE(b.broken());
}

INSTANTIATE_TEST_SUITE_P(StartMethods, SyncP, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
