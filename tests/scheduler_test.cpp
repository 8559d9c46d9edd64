// The scheduler's work per submission, run once per start method. A queue of single-task sources
// (one apply_async or submit each) is what a fast loop of calls builds while every worker is
// busy; sizing the batch of an idle worker must not walk that queue on every submission, or
// N calls cost N^2 / 2 looks at the queue (tiny tasks over MPI ranks, whose round trip is
// longer, ran at a fraction of the local rate because of it). Counted, not timed.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/detail/engine.hpp"
#include "multiproc/detail/task.hpp"
#include "multiproc/synchronize.hpp"

namespace mp_scheduler_test {

int inc(int x) { return x + 1; }
// Says it started, then holds its worker until `go` is set.
int hold(mp::Semaphore started, mp::Event go) {
    started.release();
    return go.wait(std::chrono::seconds(60)) ? 0 : -1;
}

}  // namespace mp_scheduler_test

namespace {

using mp::detail::OwnedCall;
using mp::detail::TaskSlot;

// What the sources of one test share: how often the scheduler asked for their size, and how
// many of their tasks came back.
struct Counts {
    std::atomic<std::size_t> remaining_calls{0};
    std::mutex m;
    std::condition_variable cv;
    std::size_t done = 0;
    std::size_t failed = 0;

    void finish(bool ok) {
        {
            std::lock_guard lk(m);
            ++(ok ? done : failed);
        }
        cv.notify_all();
    }
    bool wait_for(std::size_t n) {
        std::unique_lock lk(m);
        return cv.wait_for(lk, std::chrono::seconds(60), [&] { return done + failed >= n; });
    }
};

// One task, as an apply_async call makes it, counting the scheduler's remaining() calls.
class OneTask final : public mp::detail::TaskSource {
public:
    OneTask(OwnedCall call, std::shared_ptr<Counts> counts)
        : call_(std::move(call)), counts_(std::move(counts)) {}
    bool pull(std::size_t, TaskSlot& slot) override {
        if (pulled_) return false;
        pulled_ = true;
        slot.call = std::move(call_);
        return true;
    }
    bool exhausted() const override { return pulled_; }
    std::optional<std::size_t> remaining() const override {
        counts_->remaining_calls.fetch_add(1, std::memory_order_relaxed);
        return pulled_ ? 0 : 1;
    }
    void complete(std::uint64_t, std::span<const std::byte>,
                  std::span<mp::detail::UniqueFd>) override {
        counts_->finish(true);
    }
    void fail(std::uint64_t, std::exception_ptr) override { counts_->finish(false); }
    void abandon(std::exception_ptr) override { counts_->finish(false); }

private:
    OwnedCall call_;
    bool pulled_ = false;
    std::shared_ptr<Counts> counts_;
};

class SchedulerTest : public mp::test::StartMethodTest {};

// Both workers are held by a task (one each: the first runs before the second is submitted, which
// goes to the idle worker) while 4,000 single tasks are submitted: the scheduler looks at
// the size of each queued source a bounded number of times per submission, not once per source
// queued (that would be about 8 million looks).
TEST_P(SchedulerTest, ManySingleTasksAreNotWalkedOnEverySubmission) {
    mp::detail::EngineOptions eo;
    eo.processes = 2;
    eo.context = ctx();
    mp::detail::Engine engine(std::move(eo));
    auto counts = std::make_shared<Counts>();
    mp::Semaphore started(0);
    mp::Event go;
    for (int i = 0; i < 2; ++i) {
        engine.submit(std::make_shared<OneTask>(
            mp::detail::package_pool_task(mp_scheduler_test::hold, started, go), counts));
        ASSERT_TRUE(started.acquire(std::chrono::seconds(60))) << "hang";
    }
    constexpr std::size_t kTasks = 4000;
    for (std::size_t i = 0; i < kTasks; ++i)
        engine.submit(std::make_shared<OneTask>(
            mp::detail::package_pool_task(mp_scheduler_test::inc, static_cast<int>(i)), counts));
    go.set();
    ASSERT_TRUE(counts->wait_for(kTasks + 2)) << "hang";
    EXPECT_EQ(counts->failed, 0u);
    EXPECT_LT(counts->remaining_calls.load(), 25 * kTasks);
    engine.close();
    engine.join();
}

INSTANTIATE_TEST_SUITE_P(StartMethods, SchedulerTest,
                         ::testing::Values("fork", "spawn", "forkserver"),
                         [](const auto& info) { return info.param; });

}  // namespace
