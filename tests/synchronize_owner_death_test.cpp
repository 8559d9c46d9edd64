// Lock, RLock, Condition and Barrier when a holder dies, across real processes once per start
// method: a holder SIGKILLed inside the primitive (reaped or not yet, with waiters asleep, at
// arbitrary moments), a thread that exits holding a lock, a Condition waiter killed, a Barrier
// party killed inside the action; each test checks what the survivors see. The primitives at
// work are in synchronize_test.cpp.
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

template <class L>
void hold_and_hang(L l, mp::Event held) {
    l.acquire();
    l.acquire();  // twice for an RLock; a Lock would refuse: only RLock is passed here twice
    held.set();
    for (;;) ::pause();
}

void hold_lock_and_hang(mp::Lock l, mp::Event held) {
    l.acquire();
    held.set();
    for (;;) ::pause();
}

void lock_after_death(mp::Lock l, mp::RawValue<int> ok) {
    std::scoped_lock lk(l);
    ok.value() = 1;
}

TEST_P(SyncP, LockHolderKilled) {
    mp::Lock l;
    mp::Event held;
    auto p = start(hold_lock_and_hang, l, held);
    ASSERT_TRUE(held.wait(30s));
    p.kill();
    p.join();
    EXPECT_THROW(l.acquire(), mp::OwnerDied);
    EXPECT_FALSE(l.try_lock());  // we hold it now
    l.release();
    mp::RawValue<int> ok(0);
    auto q = start(lock_after_death, l, ok);
    join_ok(q);
    EXPECT_EQ(ok.value(), 1);
    EXPECT_TRUE(l.try_lock_for(1s));
    l.unlock();
}

// The killed holder is a zombie (its parent has not reaped it yet): still dead to the lock.
TEST_P(SyncP, LockHolderKilledNotYetReaped) {
    mp::Lock l;
    mp::Event held;
    auto p = start(hold_lock_and_hang, l, held);
    ASSERT_TRUE(held.wait(30s));
    p.kill();  // not joined before acquiring
    EXPECT_THROW((void)l.try_lock_for(30s), mp::OwnerDied);
    EXPECT_TRUE(l.is_owned());
    l.release();
    p.join();
}

// try_lock and short timeouts must not keep failing on a lock whose holder is dead.
TEST_P(SyncP, LockTryLockSeesDeadHolder) {
    mp::Lock l;
    mp::Event held;
    auto p = start(hold_lock_and_hang, l, held);
    ASSERT_TRUE(held.wait(30s));
    p.kill();
    p.join();
    EXPECT_THROW((void)l.try_lock(), mp::OwnerDied);
    l.release();
    EXPECT_TRUE(l.try_lock());
    l.release();
}

void wait_for_lock(mp::Lock l, mp::RawValue<int> died, mp::RawValue<int> got, mp::Event waiting) {
    waiting.set();
    try {
        if (!l.acquire(30s)) std::exit(2);
    } catch (const mp::OwnerDied&) {
        __atomic_fetch_add(&died.value(), 1, __ATOMIC_SEQ_CST);
    }
    __atomic_fetch_add(&got.value(), 1, __ATOMIC_SEQ_CST);
    l.release();
}

// Waiters already asleep when the holder is killed: exactly one of them gets OwnerDied, and
// every one of them gets the lock in turn.
TEST_P(SyncP, LockSleepingWaitersWhenHolderKilled) {
    mp::Lock l;
    mp::Event held, w1, w2;
    mp::RawValue<int> died(0), got(0);
    auto holder = start(hold_lock_and_hang, l, held);
    ASSERT_TRUE(held.wait(30s));
    auto a = start(wait_for_lock, l, died, got, w1);
    auto b = start(wait_for_lock, l, died, got, w2);
    ASSERT_TRUE(w1.wait(30s));
    ASSERT_TRUE(w2.wait(30s));
    std::this_thread::sleep_for(50ms);  // let them fall asleep on the lock (not required)
    holder.kill();
    holder.join();
    join_ok(a);
    join_ok(b);
    EXPECT_EQ(died.value(), 1);
    EXPECT_EQ(got.value(), 2);
    EXPECT_TRUE(l.try_lock());
    l.release();
}

void lock_loop(mp::Lock l, mp::RawValue<long> v, mp::Event running) {
    running.set();
    for (;;) {
        try {
            l.acquire();
        } catch (const mp::OwnerDied&) {
            // held: the dead peer's increment may or may not have happened; nothing to repair
        }
        __atomic_fetch_add(&v.value(), 1, __ATOMIC_RELAXED);
        l.release();
    }
}

// Two processes hammer one lock; one is killed at an arbitrary moment (holding it, waiting
// for it, or between the two): the survivor keeps going, and after the survivor is killed too
// the parent gets the lock.
TEST_P(SyncP, LockHammeredHolderKilledAtArbitraryMoments) {
    mp::Lock l;
    mp::RawValue<long> v(0);
    for (int round = 0; round < 4; ++round) {
        mp::Event ra, rb;
        auto a = start(lock_loop, l, v, ra);
        auto b = start(lock_loop, l, v, rb);
        ASSERT_TRUE(ra.wait(30s));
        ASSERT_TRUE(rb.wait(30s));
        std::this_thread::sleep_for(std::chrono::microseconds(300 + 1900 * round));
        a.kill();
        a.join();
        const long before = __atomic_load_n(&v.value(), __ATOMIC_RELAXED);
        const auto until = Clock::now() + 20s;
        while (__atomic_load_n(&v.value(), __ATOMIC_RELAXED) < before + 1000 &&
               Clock::now() < until)
            std::this_thread::sleep_for(1ms);
        EXPECT_GE(__atomic_load_n(&v.value(), __ATOMIC_RELAXED), before + 1000) << "survivor stuck";
        b.kill();
        b.join();
        bool got = false;
        try {
            got = l.try_lock_for(20s);
        } catch (const mp::OwnerDied&) {
            got = true;
        }
        ASSERT_TRUE(got);
        l.release();
    }
}

// A thread that exits holding a lock is a dead owner too.
TEST(Synchronize, LockHolderThreadExited) {
    mp::RLock r;
    std::thread([&] {
        r.acquire();
        r.acquire();
    }).join();
    EXPECT_THROW(r.acquire(), mp::OwnerDied);
    r.release();  // depth 1
    EXPECT_THROW(r.release(), mp::UsageError);
}

TEST_P(SyncP, RLockHolderKilled) {
    mp::RLock r;
    mp::Event held;
    auto p = start(hold_and_hang<mp::RLock>, r, held);
    ASSERT_TRUE(held.wait(30s));
    EXPECT_FALSE(r.try_lock());
    p.kill();
    p.join();
    bool died = false;
    try {
        (void)r.try_lock_for(10s);
    } catch (const mp::OwnerDied&) {
        died = true;
    }
    EXPECT_TRUE(died);
    r.release();  // depth 1: the dead owner's depth of 2 is gone with it
    EXPECT_THROW(r.release(), mp::UsageError);
    EXPECT_TRUE(r.try_lock());
    r.release();
}

void wait_forever_on(mp::Condition c, mp::Event waiting) {
    std::scoped_lock lk(c);
    waiting.set();
    c.wait();
    std::exit(6);  // never notified in this test
}

TEST_P(SyncP, ConditionWaiterKilled) {
    mp::Condition c;
    mp::Event waiting;
    mp::RawValue<int> go(0), live_waiting(0);
    auto dead = start(wait_forever_on, c, waiting);
    ASSERT_TRUE(waiting.wait(30s));
    {
        std::scoped_lock lk(c);  // the waiter released it: it is asleep in wait()
    }
    auto live = start(wait_for_go, c, go, live_waiting);
    for (;;) {
        std::scoped_lock lk(c);
        if (live_waiting.value() == 1) break;
        c.wait(1ms);
    }
    dead.kill();
    dead.join();
    {
        std::scoped_lock lk(c);
        go.value() = 1;
        c.notify(1);  // must reach the live waiter, not vanish with the dead one
    }
    join_ok(live);
    std::scoped_lock lk(c);  // the lock is fine: the dead waiter did not hold it
}

void hold_condition_and_hang(mp::Condition c, mp::Event held) {
    c.acquire();
    held.set();
    for (;;) ::pause();
}

TEST_P(SyncP, ConditionHolderKilledWaiterSeesOwnerDied) {
    mp::Condition c;
    mp::Event held;
    auto p = start(hold_condition_and_hang, c, held);
    ASSERT_TRUE(held.wait(30s));
    p.kill();
    p.join();
    EXPECT_THROW(c.acquire(), mp::OwnerDied);
    c.notify_all();  // held: usable
    EXPECT_FALSE(c.wait(5ms));
    c.release();
}

void die_in_action() { ::kill(::getpid(), SIGKILL); }

void arrive_last_and_die(mp::Barrier b) {
    while (b.n_waiting() < 1) std::this_thread::sleep_for(1ms);  // the parent waits already
    (void)b.wait(30s);
}

TEST_P(SyncP, BarrierPartyKilledInsideAction) {
    mp::Barrier b(2, die_in_action);
    // We arrive first and wait; the child arrives last, runs the action, and dies in it.
    auto p = start(arrive_last_and_die, b);
    EXPECT_THROW(b.wait(30s), mp::BrokenBarrierError);
    p.join();
    EXPECT_EQ(p.exitcode(), std::optional<int>(-SIGKILL));
    EXPECT_TRUE(b.broken());
    b.reset();
    EXPECT_FALSE(b.broken());
}

INSTANTIATE_TEST_SUITE_P(StartMethods, SyncP, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
