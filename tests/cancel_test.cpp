// Cancelling running tasks (Future::cancel(mp::force), AsyncResult::cancel(mp::force)) and
// stopping every worker of an executor (terminate_workers, kill_workers), run once per start
// method: the killed worker is replaced, every other task completes, nothing hangs and no
// process is left behind (the test main's leak check). Hang guards are generous bounds.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/futures.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/synchronize.hpp"

namespace mp_cancel_test {

int hang(int x) {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    return x;
}
// Says it started, then hangs.
int started_then_hang(mp::Event started) {
    started.set();
    return hang(0);
}
int ignore_term_then_hang(mp::Event started) {
    ::signal(SIGTERM, SIG_IGN);
    started.set();
    return hang(0);
}
int square(int x) { return x * x; }
std::vector<char> big(int mib) {
    return std::vector<char>(static_cast<std::size_t>(mib) << 20, 'x');
}

}  // namespace mp_cancel_test

namespace {

using namespace std::chrono_literals;
using namespace mp_cancel_test;
using mp::test::StartMethodTest;

constexpr auto kGuard = std::chrono::seconds(30);  // a hang guard, never a timing assertion

class CancelTest : public StartMethodTest {
protected:
    mp::ExecutorOptions executor_options() const {
        mp::ExecutorOptions o;
        o.context = ctx();
        return o;
    }
    mp::PoolOptions pool_options() const {
        mp::PoolOptions o;
        o.context = ctx();
        return o;
    }
};

TEST_P(CancelTest, PlainCancelLeavesARunningTaskAlone) {
    mp::ProcessPoolExecutor ex(1, executor_options());
    mp::Event started;
    auto running = ex.submit(started_then_hang, started);
    auto queued = ex.submit(square, 3);
    ASSERT_TRUE(started.wait(kGuard));
    EXPECT_FALSE(running.cancel());  // Python's meaning: only a pending task
    EXPECT_FALSE(running.done());
    EXPECT_TRUE(running.cancel(mp::force));
    EXPECT_TRUE(running.cancelled());
    EXPECT_THROW(running.result(), mp::CancelledError);
    ASSERT_TRUE(queued.wait(kGuard));
    EXPECT_EQ(queued.result(), 9);
    EXPECT_EQ(ex.submit(square, 4).result(kGuard), 16);
}

TEST_P(CancelTest, ForceCancelKillsOnlyThatWorker) {
    mp::ProcessPoolExecutor ex(2, executor_options());
    mp::Event started;
    auto victim = ex.submit(started_then_hang, started);
    ASSERT_TRUE(started.wait(kGuard));
    const auto before = ex.worker_pids();
    std::vector<mp::Future<int>> others;
    for (int i = 0; i < 20; ++i) others.push_back(ex.submit(square, i));
    EXPECT_TRUE(victim.cancel(mp::force));
    EXPECT_TRUE(victim.cancel(mp::force));  // once cancelled, it stays so
    for (int i = 0; i < 20; ++i) EXPECT_EQ(others[i].result(kGuard), i * i);
    // The victim's worker is replaced: the pool is back to two workers, one of them new.
    const auto deadline = std::chrono::steady_clock::now() + kGuard;
    while (ex.worker_pids() == before && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    EXPECT_NE(ex.worker_pids(), before);
    EXPECT_EQ(ex.submit(square, 5).result(kGuard), 25);
}

TEST_P(CancelTest, ForceCancelOfAPendingOrDoneFuture) {
    mp::ProcessPoolExecutor ex(1, executor_options());
    mp::Event started;
    auto blocker = ex.submit(started_then_hang, started);
    ASSERT_TRUE(started.wait(kGuard));
    auto done = ex.submit(square, 2);
    auto pending = ex.submit(square, 3);
    // Whatever the worker holds is killed with the blocker; `done` and `pending` then run on
    // its replacement, unless cancelled first.
    EXPECT_TRUE(pending.cancel(mp::force));
    EXPECT_TRUE(pending.cancelled());
    EXPECT_TRUE(blocker.cancel(mp::force));
    EXPECT_EQ(done.result(kGuard), 4);
    EXPECT_FALSE(done.cancel(mp::force));
    EXPECT_THROW(pending.result(), mp::CancelledError);
}

// The killed worker may be in the middle of sending a large result to the parent (the
// cancelled task's own): the partial frame is dropped with the worker.
TEST_P(CancelTest, ForceCancelWhileTheWorkerSendsALargeResult) {
    mp::ProcessPoolExecutor ex(1, executor_options());
    for (int round = 0; round < 3; ++round) {
        auto f = ex.submit(big, 64);
        auto g = ex.submit(square, round);
        const auto deadline = std::chrono::steady_clock::now() + kGuard;
        while (!f.running() && !f.done() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(1ms);
        std::this_thread::sleep_for(std::chrono::milliseconds(20 * round));
        const bool cancelled = f.cancel(mp::force);
        ASSERT_TRUE(f.wait(kGuard));
        if (cancelled) EXPECT_THROW(f.result(), mp::CancelledError);
        else EXPECT_EQ(f.result().size(), std::size_t{64} << 20);
        EXPECT_EQ(g.result(kGuard), round * round);
    }
}

TEST_P(CancelTest, AsyncResultCancel) {
    mp::Pool pool(2, pool_options());
    mp::Event started;
    auto running = pool.apply_async(started_then_hang, started);
    ASSERT_TRUE(started.wait(kGuard));
    EXPECT_FALSE(running.cancel());
    EXPECT_TRUE(running.cancel(mp::force));
    EXPECT_TRUE(running.ready());
    EXPECT_FALSE(running.successful());
    EXPECT_THROW(running.get(), mp::CancelledError);
    EXPECT_EQ(pool.apply(square, 6), 36);
}

TEST_P(CancelTest, TerminateWorkersFailsEveryPendingFuture) {
    for (bool kill : {false, true}) {
        mp::ProcessPoolExecutor ex(2, executor_options());
        mp::Event a, b;
        std::vector<mp::Future<int>> fs;
        fs.push_back(ex.submit(started_then_hang, a));
        fs.push_back(ex.submit(ignore_term_then_hang, b));  // only SIGKILL stops this one
        ASSERT_TRUE(a.wait(kGuard));
        ASSERT_TRUE(b.wait(kGuard));
        for (int i = 0; i < 10; ++i) fs.push_back(ex.submit(square, i));
        if (kill) ex.kill_workers();
        else ex.terminate_workers();
        for (auto& f : fs) {
            ASSERT_TRUE(f.wait(kGuard));
            ASSERT_TRUE(f.exception() != nullptr);
            EXPECT_THROW(std::rethrow_exception(f.exception()), mp::BrokenProcessPool);
        }
        EXPECT_THROW(ex.submit(square, 1), mp::BrokenProcessPool);  // as the futures
        EXPECT_TRUE(ex.worker_pids().empty());
        ex.shutdown();  // returns at once: nothing is left to wait for
    }
}

INSTANTIATE_TEST_SUITE_P(StartMethods, CancelTest, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
