// mp::PoolStats from Pool::stats() and ProcessPoolExecutor::stats(): exact counts after a known
// workload, failures, crashes counted as restarts with their reason, retries, under every start
// method.
#include "multiproc/engine_stats.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/futures.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/sharedctypes.hpp"

namespace {

int square(int x) { return x * x; }
int fail_always(int) { throw std::invalid_argument("no"); }
int always_crash(int) {
    ::raise(SIGKILL);
    return 0;
}
// Kills its worker the first time it runs (the shared counter says which time it is).
int crash_first_time(mp::Value<int> runs) {
    int before = 0;
    {
        std::scoped_lock lk(runs.get_lock());
        before = runs.value()++;
    }
    if (before == 0) ::raise(SIGKILL);
    return 7;
}

class EngineStatsTest : public mp::test::StartMethodTest {
protected:
    mp::PoolOptions opts() const { return with_context<mp::PoolOptions>(); }
};

// The per-worker numbers add up to the totals, and nothing waits once every result is in.
void expect_consistent(const mp::PoolStats& s) {
    std::size_t done = 0, items = 0, failed = 0, retried = 0;
    for (std::size_t i = 0; i < s.workers.size(); ++i) {
        EXPECT_EQ(s.workers[i].index, i);
        done += s.workers[i].tasks_done;
        items += s.workers[i].items_done;
        failed += s.workers[i].tasks_failed;
        retried += s.workers[i].tasks_retried;
    }
    EXPECT_EQ(done, s.tasks_done);
    EXPECT_EQ(items, s.items_done);
    EXPECT_EQ(failed, s.tasks_failed);
    EXPECT_EQ(retried, s.tasks_retried);
    EXPECT_EQ(s.queued_items, 0u);
    EXPECT_EQ(s.in_flight_tasks, 0u);
}

TEST_P(EngineStatsTest, ExactCountsAfterAKnownWorkload) {
    mp::Pool pool(2, opts());
    const mp::PoolStats before = pool.stats();
    ASSERT_EQ(before.workers.size(), 2u);
    EXPECT_EQ(before.tasks_done, 0u);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(pool.apply(square, i), i * i);
    std::vector<int> xs(100);
    for (int i = 0; i < 100; ++i) xs[static_cast<std::size_t>(i)] = i;
    EXPECT_EQ(pool.map(square, xs, 10).size(), 100u);  // 10 tasks of 10 items
    const mp::PoolStats s = pool.stats();
    expect_consistent(s);
    EXPECT_EQ(s.tasks_done, 20u);
    EXPECT_EQ(s.items_done, 110u);
    EXPECT_EQ(s.tasks_failed, 0u);
    EXPECT_EQ(s.tasks_retried, 0u);
    EXPECT_EQ(s.total_restarts(), 0u);
    EXPECT_GE(s.batch_tasks, 1u);
    EXPECT_GE(s.batch_items, s.batch_tasks);
    auto pids = pool.worker_pids();
    for (const auto& w : s.workers)
        EXPECT_NE(std::find(pids.begin(), pids.end(), w.pid), pids.end()) << w.pid;
}

TEST_P(EngineStatsTest, FailedTaskCounted) {
    mp::Pool pool(2, opts());
    EXPECT_THROW(pool.apply(fail_always, 1), std::invalid_argument);
    EXPECT_EQ(pool.apply(square, 2), 4);
    const mp::PoolStats s = pool.stats();
    expect_consistent(s);
    EXPECT_EQ(s.tasks_done, 2u);
    EXPECT_EQ(s.tasks_failed, 1u);
}

TEST_P(EngineStatsTest, CrashCountedAsARestartWithItsReason) {
    mp::Pool pool(2, opts());
    EXPECT_THROW(pool.apply(always_crash, 0), mp::BrokenProcessPool);
    EXPECT_EQ(pool.apply(square, 3), 9);
    const mp::PoolStats s = pool.stats();
    expect_consistent(s);
    EXPECT_EQ(s.restarts_for(mp::RestartReason::crash), 1u);
    EXPECT_EQ(s.restarts_for(mp::RestartReason::max_tasks), 0u);
    EXPECT_EQ(s.total_restarts(), 1u);
    EXPECT_EQ(s.tasks_failed, 1u);  // lost with its worker, not run again
    EXPECT_EQ(s.tasks_done, 1u);
    std::size_t slot_restarts = 0;
    for (const auto& w : s.workers) slot_restarts += w.restarts;
    EXPECT_EQ(slot_restarts, 1u);
    auto pids = pool.worker_pids();
    for (const auto& w : s.workers)  // the replacement took its predecessor's slot
        EXPECT_NE(std::find(pids.begin(), pids.end(), w.pid), pids.end()) << w.pid;
}

TEST_P(EngineStatsTest, RetriedTaskCounted) {
    auto o = opts();
    o.retries = 1;
    mp::Pool pool(2, o);
    mp::Value<int> runs(0);
    EXPECT_EQ(pool.apply(crash_first_time, runs), 7);
    EXPECT_EQ(runs.value(), 2);
    const mp::PoolStats s = pool.stats();
    expect_consistent(s);
    EXPECT_EQ(s.tasks_retried, 1u);
    EXPECT_EQ(s.tasks_failed, 0u);
    EXPECT_EQ(s.tasks_done, 1u);
    EXPECT_EQ(s.restarts_for(mp::RestartReason::crash), 1u);
}

TEST_P(EngineStatsTest, MaxTasksPerChildCountedByReason) {
    auto o = opts();
    o.maxtasksperchild = 2;
    mp::Pool pool(1, o);
    // The third and fifth tasks can only go to a replacement: two retirements before the fifth
    // result, and the fifth worker has run one task.
    for (int i = 0; i < 5; ++i) EXPECT_EQ(pool.apply(square, i), i * i);
    const mp::PoolStats s = pool.stats();
    expect_consistent(s);
    EXPECT_EQ(s.restarts_for(mp::RestartReason::max_tasks), 2u);
    EXPECT_EQ(s.restarts_for(mp::RestartReason::crash), 0u);
    EXPECT_EQ(s.workers.at(0).restarts, 2u);
    EXPECT_EQ(s.tasks_done, 5u);
}

TEST_P(EngineStatsTest, ExecutorCounts) {
    mp::ProcessPoolExecutor ex(2, with_context<mp::ExecutorOptions>());
    std::vector<mp::Future<int>> fs;
    for (int i = 0; i < 7; ++i) fs.push_back(ex.submit(square, i));
    for (auto& f : fs) static_cast<void>(f.result());
    const mp::PoolStats s = ex.stats();
    expect_consistent(s);
    EXPECT_EQ(s.tasks_done, 7u);
    EXPECT_EQ(s.items_done, 7u);
}

// While a map waits, its items are counted as queued or in flight, never lost.
TEST_P(EngineStatsTest, QueueDepthWhileWorking) {
    mp::Pool pool(1, opts());
    std::vector<int> xs(50, 1);
    auto r = pool.map_async(square, xs, 1);
    const mp::PoolStats s = pool.stats();
    EXPECT_EQ(s.items_done + s.queued_items + s.in_flight_tasks, 50u);
    r.wait();
    expect_consistent(pool.stats());
}

INSTANTIATE_TEST_SUITE_P(StartMethods, EngineStatsTest,
                         ::testing::Values("fork", "spawn", "forkserver"));

}  // namespace
