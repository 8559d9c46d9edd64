// Per-task time limits (PoolOptions::task_timeout, ExecutorOptions::task_timeout,
// mp::task_timeout per call) and workers recycled for their memory (max_memory_per_child), run
// once per start method. A task past its limit has its worker killed: only that task fails,
// with mp::TimeoutError naming it; the worker is replaced and every other task completes.
// Hang guards are generous bounds (30 s); nothing asserts how long anything took.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/futures.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/sharedctypes.hpp"
#include "multiproc/synchronize.hpp"

// Task functions with external linkage, so that the error can name them.
namespace mp_timeout_test {

int hang(int x) {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    return x;
}
int square(int x) { return x * x; }
int nap(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}
int my_pid(int) { return static_cast<int>(::getpid()); }
// Item 7 hangs, the others are squared.
int hang_on_seven(int x) { return x == 7 ? hang(x) : x * x; }
// Ignores SIGTERM, so only the SIGKILL after the grace can stop it.
int hang_ignoring_term(int x) {
    ::signal(SIGTERM, SIG_IGN);
    return hang(x);
}
std::size_t length_of(std::string s) { return s.size(); }
// Counts its attempts in shared memory, then hangs.
int count_and_hang(mp::Value<int> attempts) {
    {
        std::scoped_lock lk(attempts.get_lock());
        attempts.value() += 1;
    }
    return hang(0);
}
// A large result: the worker is still sending it when a neighbour times out.
std::vector<char> big(int mib) {
    return std::vector<char>(static_cast<std::size_t>(mib) << 20, 'x');
}
// Keeps `mib` MiB resident for good, then says which process it ran in.
int leak(int mib) {
    static std::vector<std::vector<char>> kept;
    kept.emplace_back(static_cast<std::size_t>(mib) << 20, 'x');
    return static_cast<int>(::getpid());
}

}  // namespace mp_timeout_test

namespace {

using namespace std::chrono_literals;
using namespace mp_timeout_test;
using mp::test::StartMethodTest;

constexpr auto kGuard = std::chrono::seconds(30);  // a hang guard, never a timing assertion

template <class Res>
std::string timeout_message(Res& r) {
    if (!r.wait(kGuard)) {
        ADD_FAILURE() << "hang";
        return {};
    }
    try {
        r.get();
    } catch (const mp::TimeoutError& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
        return {};
    }
    ADD_FAILURE() << "the task did not time out";
    return {};
}

class TaskTimeoutTest : public StartMethodTest {
protected:
    mp::PoolOptions pool_options() const {
        mp::PoolOptions o;
        o.context = ctx();
        return o;
    }
};

TEST_P(TaskTimeoutTest, OnlyTheOverdueTaskFailsAndItsWorkerIsReplaced) {
    mp::Pool pool(2, pool_options());
    const auto before = pool.worker_pids();
    auto slow = pool.apply_async(mp::task_timeout(300ms), hang, 1);
    std::vector<mp::AsyncResult<int>> rs;
    for (int i = 0; i < 20; ++i) rs.push_back(pool.apply_async(square, i));
    const std::string what = timeout_message(slow);
    EXPECT_NE(what.find("mp_timeout_test::hang(int)"), std::string::npos) << what;
    EXPECT_NE(what.find("timed out after 300 ms"), std::string::npos) << what;
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(rs[i].wait(kGuard));
        EXPECT_EQ(rs[i].get(), i * i);
    }
    EXPECT_EQ(pool.apply(square, 9), 81);
    EXPECT_EQ(pool.worker_pids().size(), 2u);
    EXPECT_NE(pool.worker_pids(), before);
}

// The only task in flight, sent by the submitting thread itself while the supervisor sleeps:
// the supervisor must still wake for its limit.
TEST_P(TaskTimeoutTest, ALoneTaskOnAnIdlePoolTimesOut) {
    mp::Pool pool(1, pool_options());
    EXPECT_EQ(pool.apply(square, 3), 9);  // the worker is ready, the supervisor asleep
    std::this_thread::sleep_for(50ms);
    auto r = pool.apply_async(mp::task_timeout(200ms), hang, 1);
    EXPECT_FALSE(timeout_message(r).empty());
}

TEST_P(TaskTimeoutTest, PoolOptionAppliesToEveryTaskAndACallMayLiftIt) {
    auto o = pool_options();
    o.task_timeout = 300ms;
    mp::Pool pool(2, o);
    auto slow = pool.apply_async(hang, 1);
    auto allowed = pool.apply_async(mp::task_timeout(mp::forever), nap, 600);
    EXPECT_FALSE(timeout_message(slow).empty());
    ASSERT_TRUE(allowed.wait(kGuard));
    EXPECT_EQ(allowed.get(), 600);
}

TEST_P(TaskTimeoutTest, TheLimitOfAMapIsPerItem) {
    auto o = pool_options();
    o.task_timeout = 300ms;
    mp::Pool pool(2, o);
    std::vector<int> xs(40);
    for (int i = 0; i < 40; ++i) xs[i] = i;
    auto it = pool.imap(hang_on_seven, xs, 5);
    for (int i = 0; i < 40; ++i) {
        if (i == 7) {
            try {
                static_cast<void>(it.next(kGuard));
                ADD_FAILURE() << "item 7 did not time out";
            } catch (const mp::TimeoutError& e) {
                EXPECT_NE(std::string(e.what()).find("hang_on_seven"), std::string::npos)
                    << e.what();
            }
            continue;
        }
        auto r = it.next(kGuard);
        ASSERT_TRUE(r);
        EXPECT_EQ(*r, i * i);
    }
    EXPECT_FALSE(it.next(kGuard));
}

TEST_P(TaskTimeoutTest, ATimedOutTaskIsNotRetriedUnlessAsked) {
    for (bool retry : {false, true}) {
        auto o = pool_options();
        o.retries = 2;
        o.retry_timeouts = retry;
        mp::Pool pool(2, o);
        mp::Value<int> attempts(0);
        auto r = pool.apply_async(mp::task_timeout(200ms), count_and_hang, attempts);
        EXPECT_FALSE(timeout_message(r).empty());
        EXPECT_EQ(attempts.get(), retry ? 3 : 1);
        EXPECT_EQ(pool.apply(square, 4), 16);
    }
}

TEST_P(TaskTimeoutTest, AWorkerThatIgnoresSigtermIsKilled) {
    mp::Pool pool(1, pool_options());
    auto r = pool.apply_async(mp::task_timeout(200ms), hang_ignoring_term, 1);
    EXPECT_FALSE(timeout_message(r).empty());
    EXPECT_EQ(pool.apply(square, 5), 25);
}

// The overdue task's worker also holds a prefetched batch of large arguments, which the engine
// may be sending when it kills the worker: those tasks run again elsewhere.
TEST_P(TaskTimeoutTest, TimeoutWhileTheWorkerReceivesABatch) {
    mp::Pool pool(1, pool_options());
    auto slow = pool.apply_async(mp::task_timeout(300ms), hang, 1);
    std::vector<mp::AsyncResult<std::size_t>> rs;
    for (int i = 0; i < 8; ++i)
        rs.push_back(pool.apply_async(length_of, std::string(900'000 + i, 'a')));
    EXPECT_FALSE(timeout_message(slow).empty());
    for (int i = 0; i < 8; ++i) {
        ASSERT_TRUE(rs[i].wait(kGuard));
        EXPECT_EQ(rs[i].get(), 900'000u + i);
    }
}

// Large results are on their way (from the other worker, or from this one's earlier tasks)
// when a task overruns: every result arrives whole, and only the overdue task fails. (A task's
// own result cannot be cut by its time limit: the worker clears the running task before it
// sends; cancel_test kills a worker in the middle of such a send.)
TEST_P(TaskTimeoutTest, TimeoutWhileWorkersSendLargeResults) {
    mp::ProcessPoolExecutor ex(2, [&] {
        mp::ExecutorOptions o;
        o.context = ctx();
        return o;
    }());
    std::vector<mp::Future<std::vector<char>>> fs;
    for (int i = 0; i < 3; ++i) fs.push_back(ex.submit(big, 32));
    auto slow = ex.submit(mp::task_timeout(200ms), hang, 1);
    for (int i = 0; i < 3; ++i) fs.push_back(ex.submit(big, 32));
    ASSERT_TRUE(slow.wait(kGuard));
    EXPECT_THROW(slow.result(), mp::TimeoutError);
    for (auto& f : fs) {
        ASSERT_TRUE(f.wait(kGuard));
        EXPECT_EQ(f.result().size(), std::size_t{32} << 20);
    }
}

TEST_P(TaskTimeoutTest, ExecutorOptionTimesOutASubmittedTask) {
    mp::ExecutorOptions o;
    o.context = ctx();
    o.task_timeout = 200ms;
    mp::ProcessPoolExecutor ex(2, o);
    auto slow = ex.submit(hang, 1);
    auto fine = ex.submit(square, 12);
    ASSERT_TRUE(slow.wait(kGuard));
    try {
        slow.result();
        ADD_FAILURE() << "no timeout";
    } catch (const mp::TimeoutError& e) {
        EXPECT_NE(std::string(e.what()).find("mp::ProcessPoolExecutor"), std::string::npos);
    }
    EXPECT_EQ(fine.result(kGuard), 144);
}

TEST_P(TaskTimeoutTest, AWorkerOverItsMemoryBoundIsReplaced) {
    auto o = pool_options();
    o.max_memory_per_child = std::size_t{200} << 20;
    mp::Pool pool(1, o);
    const int first = pool.apply(my_pid, 0);
    EXPECT_EQ(pool.apply(my_pid, 0), first);  // small tasks keep their worker
    const int leaker = pool.apply(leak, 256);
    EXPECT_EQ(leaker, first);
    // The worker retires after the task that grew it; the next task meets a new one.
    const int next = pool.apply(my_pid, 0);
    EXPECT_NE(next, leaker);
    EXPECT_EQ(pool.apply(leak, 8), next);
    EXPECT_EQ(pool.apply(my_pid, 0), next);
}

// The engine counts replaced workers by reason, for the pool's statistics.
TEST_P(TaskTimeoutTest, RestartsAreCountedByReason) {
    using mp::RestartReason;
    mp::detail::EngineOptions eo;
    eo.processes = 1;
    eo.context = ctx();
    eo.max_memory_per_child = std::size_t{200} << 20;
    mp::detail::Engine engine(std::move(eo));
    auto run = [&](std::int64_t limit, auto f, int x) {
        auto st = std::make_shared<mp::detail::ResultState<int>>();
        engine.submit(std::make_shared<mp::detail::ApplySource<int>>(
            mp::detail::package_pool_task(f, x), st, engine, limit));
        EXPECT_TRUE(st->wait(mp::detail::Deadline(kGuard))) << "hang";
        return st;
    };
    // Each replacement is forked by the supervisor thread right after the result that caused
    // it is published; the next submission waits for it, so that this thread does not allocate
    // while the supervisor forks: g++ 12's AddressSanitizer allocator is not fork-safe (a child
    // forked while another thread holds its lock hangs at its first allocation; seen once in
    // CI). glibc's malloc is.
    auto replaced = [&](const std::vector<pid_t>& before) {
        const mp::detail::Deadline guard(kGuard);
        for (;;) {
            const auto now = engine.worker_pids();
            if (!now.empty() && now != before) return true;
            if (guard.expired()) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    };
    auto pids = engine.worker_pids();
    run(-1, leak, 256);
    ASSERT_TRUE(replaced(pids)) << "the worker over its memory bound was not replaced";
    EXPECT_EQ(run(-1, square, 2)->value(), 4);  // on the replacement: the death was counted
    EXPECT_EQ(engine.stats().restarts_for(RestartReason::max_memory), 1u);
    pids = engine.worker_pids();
    EXPECT_NE(run(100'000'000, hang, 1)->error(), nullptr);
    ASSERT_TRUE(replaced(pids)) << "the worker killed for its overdue task was not replaced";
    EXPECT_EQ(run(-1, square, 3)->value(), 9);
    EXPECT_EQ(engine.stats().restarts_for(RestartReason::timeout), 1u);
    EXPECT_EQ(engine.stats().restarts_for(RestartReason::crash), 0u);
    EXPECT_EQ(engine.stats().restarts_for(RestartReason::cancelled), 0u);
    EXPECT_EQ(engine.stats().restarts_for(RestartReason::max_tasks), 0u);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, TaskTimeoutTest,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
