// Manager queues and synchronisation primitives: across processes under every start method, and
// a blocked client that does not stall the others.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/managers.hpp"
#include "multiproc/process.hpp"
#include "multiproc/synchronize.hpp"

namespace {

using namespace std::chrono_literals;

class ManagerSyncP : public mp::test::StartMethodTest {};

void produce(mp::QueueProxy<std::string> q, int n) {
    for (int i = 0; i < n; ++i) q.put("item " + std::to_string(i));
}

void consume(mp::JoinableQueueProxy<int> q, mp::ValueProxy<int> sum) {
    for (;;) {
        const int x = q.get();
        if (x < 0) {
            q.task_done();
            return;
        }
        sum.set(sum.get() + x);
        q.task_done();
    }
}

void hold_lock(mp::LockProxy lock, mp::EventProxy held, mp::EventProxy go) {
    lock.acquire();
    held.set();
    go.wait();
    lock.release();
}

void signal(mp::ConditionProxy c, mp::NamespaceProxy ns) {
    std::scoped_lock lk(c);
    ns.set("ready", true);
    c.notify_all();
}

void meet(mp::BarrierProxy b, mp::ListProxy<int> order) {
    order.append(static_cast<int>(b.wait()));
}

TEST_P(ManagerSyncP, QueueCarriesItemsBetweenProcesses) {
    mp::Manager m(ctx());
    auto q = m.Queue<std::string>();
    auto p = start(produce, q, 50);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(q.get(), "item " + std::to_string(i));
    join_ok(p);
    EXPECT_THROW(static_cast<void>(q.get_nowait()), mp::Empty);
    EXPECT_THROW(static_cast<void>(q.get(10ms)), mp::Empty);
}

TEST_P(ManagerSyncP, JoinableQueueJoinsWhenEveryItemIsDone) {
    mp::Manager m(ctx());
    auto q = m.JoinableQueue<int>();
    auto sum = m.Value<int>(0);
    auto p = start(consume, q, sum);
    for (int i = 1; i <= 10; ++i) q.put(i);
    q.put(-1);
    q.join();
    EXPECT_EQ(sum.get(), 55);
    join_ok(p);
    EXPECT_THROW(q.task_done(), std::invalid_argument);
}

TEST_P(ManagerSyncP, LockHeldByAChildExcludesTheParent) {
    mp::Manager m(ctx());
    auto lock = m.Lock();
    auto held = m.Event();
    auto go = m.Event();
    auto p = start(hold_lock, lock, held, go);
    EXPECT_TRUE(held.wait(60s));
    EXPECT_FALSE(lock.try_lock());
    EXPECT_FALSE(lock.acquire(true, 10ms));
    go.set();
    EXPECT_TRUE(lock.acquire(true, 60s));
    lock.release();
    join_ok(p);
}

TEST_P(ManagerSyncP, ConditionWakesAWaiter) {
    mp::Manager m(ctx());
    auto c = m.Condition();
    auto ns = m.Namespace();
    ns.set("ready", false);
    std::unique_lock lk(c);
    auto p = start(signal, c, ns);
    while (!ns.get<bool>("ready")) c.wait(60s);
    lk.unlock();
    join_ok(p);
}

TEST_P(ManagerSyncP, BarrierReleasesAllParties) {
    mp::Manager m(ctx());
    auto b = m.Barrier(3);
    auto order = m.list<int>();
    auto p1 = start(meet, b, order);
    auto p2 = start(meet, b, order);
    order.append(static_cast<int>(b.wait()));
    join_ok(p1);
    join_ok(p2);
    auto got = order.copy();
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2}));
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ManagerSyncP,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

TEST(ManagerSync, BoundsAndOwnership) {
    mp::Manager m;
    auto q = m.Queue<int>(1);
    q.put(1);
    EXPECT_TRUE(q.full());
    EXPECT_THROW(q.put_nowait(2), mp::Full);
    EXPECT_THROW(q.put(2, 10ms), mp::Full);
    EXPECT_EQ(q.qsize(), 1U);

    auto r = m.RLock();
    EXPECT_TRUE(r.acquire());
    EXPECT_TRUE(r.acquire());  // recursive
    std::thread([&] {
        EXPECT_FALSE(r.try_lock());
        EXPECT_THROW(r.release(), std::runtime_error);  // not the owner
    }).join();
    r.release();
    r.release();
    EXPECT_THROW(r.release(), std::runtime_error);

    auto s = m.Semaphore(2);
    EXPECT_TRUE(s.acquire());
    EXPECT_TRUE(s.acquire());
    EXPECT_FALSE(s.acquire(false));
    s.release();
    EXPECT_EQ(s.get_value(), 1);
    auto bs = m.BoundedSemaphore(1);
    EXPECT_THROW(bs.release(), std::invalid_argument);

    auto c = m.Condition();
    EXPECT_THROW(c.wait(1ms), std::runtime_error);  // the lock is not held
    c.acquire();
    EXPECT_FALSE(c.wait(10ms));
    c.release();

    auto e = m.Event();
    EXPECT_FALSE(e.wait(10ms));
    e.set();
    EXPECT_TRUE(e.is_set());
    e.clear();
    EXPECT_FALSE(e.is_set());
}

TEST(ManagerSync, BarrierBreaksOnTimeoutAndAbort) {
    mp::Manager m;
    auto b = m.Barrier(2);
    EXPECT_EQ(b.parties(), 2U);
    EXPECT_THROW(static_cast<void>(b.wait(10ms)), mp::BrokenBarrierError);
    EXPECT_TRUE(b.broken());
    EXPECT_THROW(static_cast<void>(b.wait()), mp::BrokenBarrierError);
    b.reset();
    EXPECT_FALSE(b.broken());
    std::thread t([&] { EXPECT_THROW(static_cast<void>(b.wait()), mp::BrokenBarrierError); });
    while (b.n_waiting() == 0) std::this_thread::sleep_for(1ms);
    b.abort();
    t.join();
}

TEST(ManagerSync, ABlockedClientDoesNotStallTheOthers) {
    mp::Manager m;
    auto q = m.Queue<int>();
    auto d = m.dict<int, int>();
    std::thread blocked([&] { EXPECT_EQ(q.get(), 7); });
    for (int i = 0; i < 100; ++i) d.set(i, i);  // served while the other thread waits in get
    EXPECT_EQ(d.size(), 100U);
    q.put(7);
    blocked.join();
}

}  // namespace
