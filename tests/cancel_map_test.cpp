// Cancelling a whole map with force (AsyncResult::cancel(mp::force) on map_async/starmap_async,
// IMapIterator::cancel(mp::force) on ProcessPoolExecutor::map and Pool::imap), once per start
// method: the workers running its chunks are killed and replaced, its chunks not started never
// run, every other task completes with its value, and no worker process is left behind (the old
// pids are gone; the test main's leak check). Hang guards are generous bounds, never timings.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>
#include <thread>
#include <tuple>
#include <vector>

#include "helpers/sanitizer.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/futures.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/synchronize.hpp"

namespace mp_cancel_map_test {

// In a worker: the semaphore every map item releases when it starts (set by the initializer).
std::optional<mp::Semaphore>& started() {
    static std::optional<mp::Semaphore> s;
    return s;
}
void init_started(mp::Semaphore s) { started().emplace(s); }

int hang(int x) {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    return x;
}
// A map item that says it started, then never ends.
int announce_then_hang(int x) {
    started()->release();
    return hang(x);
}
int add_then_hang(int a, int b) {
    started()->release();
    return hang(a + b);
}
int square(int x) { return x * x; }
// An apply_async call that says it started and returns once the parent lets it.
int gated_square(mp::Event running, mp::Event go, int x) {
    running.set();
    go.wait();
    return x * x;
}

}  // namespace mp_cancel_map_test

namespace {

using namespace std::chrono_literals;
using namespace mp_cancel_map_test;
using mp::test::StartMethodTest;

constexpr auto kGuard = std::chrono::seconds(30);  // a hang guard, never a timing assertion

std::vector<int> iota(int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
    return v;
}
std::vector<int> squares(int n) {
    std::vector<int> v = iota(n);
    for (auto& x : v) x *= x;
    return v;
}

// Waits until none of `old` is a worker of `pool` any more and it has its `n` workers again;
// then expects every old pid to be gone from the system (reaped, not leaked).
template <class PoolLike>
void expect_replaced(const PoolLike& pool, const std::vector<pid_t>& old, std::size_t n) {
    auto replaced = [&] {
        const auto now = pool.worker_pids();
        if (now.size() != n) return false;
        return std::none_of(old.begin(), old.end(), [&](pid_t p) {
            return std::find(now.begin(), now.end(), p) != now.end();
        });
    };
    const auto deadline = std::chrono::steady_clock::now() + kGuard;
    while (!replaced() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    ASSERT_TRUE(replaced());
    for (pid_t p : old) {
        errno = 0;
        EXPECT_EQ(::kill(p, 0), -1) << "worker process " << p << " still exists";
        EXPECT_EQ(errno, ESRCH);
    }
}

class CancelMapTest : public StartMethodTest {
protected:
    // Options whose workers know the semaphore map items release when they start.
    template <class Options>
    Options announcing(const mp::Semaphore& s) const {
        auto o = with_context<Options>();
        o.initializer = mp::Initializer(init_started, s);
        return o;
    }
    static void wait_started(mp::Semaphore& s, int n) {
        for (int i = 0; i < n; ++i) ASSERT_TRUE(s.acquire(kGuard)) << "item " << i << " not run";
    }
};

TEST_P(CancelMapTest, ForceCancelKillsTheWorkersRunningTheMap) {
    mp::Semaphore sem(0);
    mp::Pool pool(2, announcing<mp::PoolOptions>(sem));
    auto r = pool.map_async(announce_then_hang, iota(8), 1);
    wait_started(sem, 2);  // both workers run a chunk; the others wait
    const auto before = pool.worker_pids();
    EXPECT_FALSE(r.cancel());  // Python's meaning: chunks run
    EXPECT_FALSE(r.ready());
    EXPECT_TRUE(r.cancel(mp::force));
    EXPECT_TRUE(r.cancel(mp::force));  // once cancelled, it stays so
    EXPECT_TRUE(r.ready());
    EXPECT_TRUE(r.cancelled());
    EXPECT_FALSE(r.successful());
    EXPECT_THROW(r.get(kGuard), mp::CancelledError);
    expect_replaced(pool, before, 2);
    EXPECT_EQ(pool.map_async(square, iota(50)).get(kGuard), squares(50));
    EXPECT_EQ(sem.get_value(), 0u);  // the chunks not started never ran
    EXPECT_EQ(pool.stats().restarts_for(mp::RestartReason::cancelled), 2u);

    // starmap_async likewise, on the replacements.
    const auto again = pool.worker_pids();
    auto s =
        pool.starmap_async(add_then_hang, std::vector<std::tuple<int, int>>{{1, 2}, {3, 4}}, 1);
    wait_started(sem, 2);
    EXPECT_TRUE(s.cancel(mp::force));
    EXPECT_THROW(s.get(kGuard), mp::CancelledError);
    expect_replaced(pool, again, 2);
    EXPECT_EQ(pool.apply_async(square, 9).get(kGuard), 81);
}

TEST_P(CancelMapTest, CancelAfterTheLastResultReturnsFalse) {
    mp::Semaphore sem(0);
    mp::Pool pool(2, announcing<mp::PoolOptions>(sem));
    auto done = pool.map_async(square, iota(200), 7);
    ASSERT_TRUE(done.wait(kGuard));
    auto running = pool.map_async(announce_then_hang, iota(2), 1);
    wait_started(sem, 2);
    EXPECT_FALSE(done.cancel(mp::force));  // every result arrived: nothing to cancel
    EXPECT_FALSE(done.cancel());
    EXPECT_TRUE(running.cancel(mp::force));
    EXPECT_THROW(running.get(kGuard), mp::CancelledError);
    EXPECT_FALSE(done.cancelled());
    EXPECT_TRUE(done.successful());
    EXPECT_EQ(done.get(), squares(200));
    // A cancel racing the end of a map: either it won (CancelledError) or the map did. Not
    // under AddressSanitizer with fork: a won race may kill workers whose replacements are
    // forked while this thread allocates, and g++ 12's ASan allocator is not fork-safe (the
    // child hangs; see task_timeout_test's RestartsAreCountedByReason).
    const int rounds = mp::test::asan && GetParam() == "fork" ? 0 : 20;
    for (int round = 0; round < rounds; ++round) {
        auto r = pool.map_async(square, iota(64), 4);
        if (round % 2) std::this_thread::sleep_for(std::chrono::microseconds(200 * round));
        if (r.cancel(mp::force)) {
            EXPECT_THROW(r.get(kGuard), mp::CancelledError);
        } else {
            EXPECT_EQ(r.get(kGuard), squares(64));
        }
    }
    EXPECT_EQ(pool.map_async(square, iota(30)).get(kGuard), squares(30));
}

// The other tasks of a killed worker run again elsewhere: an apply_async queued behind the
// map's running chunk; and an apply_async running while a chunk of the cancelled map waits
// behind it in the same worker completes, after which that chunk is killed when it starts.
TEST_P(CancelMapTest, ForceCancelKeepsTheOtherTasksOfThePool) {
    mp::Semaphore sem(0);
    mp::Pool pool(1, announcing<mp::PoolOptions>(sem));
    auto r = pool.map_async(announce_then_hang, iota(4), 1);
    wait_started(sem, 1);
    auto queued = pool.apply_async(square, 7);
    auto before = pool.worker_pids();
    EXPECT_TRUE(r.cancel(mp::force));
    EXPECT_THROW(r.get(kGuard), mp::CancelledError);
    EXPECT_EQ(queued.get(kGuard), 49);
    expect_replaced(pool, before, 1);

    mp::Event running, go;
    auto first = pool.apply_async(gated_square, running, go, 6);
    ASSERT_TRUE(running.wait(kGuard));
    auto behind = pool.map_async(announce_then_hang, iota(3), 1);
    auto after = pool.apply_async(square, 8);
    before = pool.worker_pids();
    EXPECT_TRUE(behind.cancel(mp::force));
    EXPECT_THROW(behind.get(kGuard), mp::CancelledError);
    go.set();
    EXPECT_EQ(first.get(kGuard), 36);
    EXPECT_EQ(after.get(kGuard), 64);
    EXPECT_EQ(pool.map_async(square, iota(20)).get(kGuard), squares(20));
    // The chunk went to the worker before the cancel (then the worker started it once `first`
    // ended and was killed for it: `after` ran on its replacement), or it was never sent.
    EXPECT_LE(sem.get_value(), 1u);
    if (sem.get_value() == 1u) expect_replaced(pool, before, 1);
    EXPECT_EQ(pool.apply_async(square, 4).get(kGuard), 16);
}

TEST_P(CancelMapTest, PlainCancelOfAMapNotStarted) {
    mp::Semaphore sem(0);
    mp::Pool pool(1, announcing<mp::PoolOptions>(sem));
    mp::Event running, go;
    auto busy = pool.apply_async(gated_square, running, go, 5);
    ASSERT_TRUE(running.wait(kGuard));
    auto spare = pool.apply_async(square, 1);  // fills the worker's prefetch
    auto r = pool.map_async(announce_then_hang, iota(4), 1);
    EXPECT_TRUE(r.cancel());  // no chunk has gone to a worker
    EXPECT_TRUE(r.cancelled());
    EXPECT_THROW(r.get(kGuard), mp::CancelledError);
    go.set();
    EXPECT_EQ(busy.get(kGuard), 25);
    EXPECT_EQ(spare.get(kGuard), 1);
    EXPECT_EQ(pool.map_async(square, iota(10)).get(kGuard), squares(10));
    EXPECT_EQ(sem.get_value(), 0u);  // none of its items ran
}

TEST_P(CancelMapTest, ExecutorMapIteratorCancel) {
    mp::Semaphore sem(0);
    mp::ProcessPoolExecutor ex(2, announcing<mp::ExecutorOptions>(sem));
    auto it = ex.map(announce_then_hang, iota(6), mp::forever, 1);
    wait_started(sem, 2);
    const auto before = ex.worker_pids();
    auto queued = ex.submit(square, 3);
    it.cancel(mp::force);
    EXPECT_THROW(it.next(kGuard), mp::CancelledError);
    EXPECT_EQ(queued.result(kGuard), 9);
    expect_replaced(ex, before, 2);
    EXPECT_EQ(ex.stats().restarts_for(mp::RestartReason::cancelled), 2u);

    // Plain cancel: the items not sent never run; the map's running items finish.
    auto quick = ex.map(square, iota(100), mp::forever, 1);
    quick.cancel();
    EXPECT_THROW(quick.next(), mp::CancelledError);
    std::vector<int> out;
    for (int y : ex.map(square, iota(40), kGuard)) out.push_back(y);
    EXPECT_EQ(out, squares(40));
    EXPECT_EQ(sem.get_value(), 0u);
    ex.shutdown(true, true);
}

TEST_P(CancelMapTest, PoolImapIteratorForceCancel) {
    mp::Semaphore sem(0);
    mp::Pool pool(2, announcing<mp::PoolOptions>(sem));
    auto it = pool.imap_unordered(announce_then_hang, iota(10), 1);
    wait_started(sem, 2);
    const auto before = pool.worker_pids();
    it.cancel(mp::force);
    EXPECT_THROW(it.next(kGuard), mp::CancelledError);
    expect_replaced(pool, before, 2);
    EXPECT_EQ(pool.map_async(square, iota(25)).get(kGuard), squares(25));
    EXPECT_EQ(sem.get_value(), 0u);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, CancelMapTest,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
