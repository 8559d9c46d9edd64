// mp::ProcessPoolExecutor, mp::Future, mp::as_completed and mp::wait, once per start method.
#include "multiproc/futures.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/process.hpp"
#include "multiproc/synchronize.hpp"

namespace {

using namespace std::chrono_literals;

// --- task functions (plain functions travel by identity under every start method) ---

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
std::string label(int x) { return "item-" + std::to_string(x); }
int sleep_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}
void nothing() {}
bool wait_for_gate(mp::Event gate) { return gate.wait(60s); }
int my_pid() { return static_cast<int>(::getpid()); }
int throw_invalid(int x) {
    if (x == 3) throw std::invalid_argument("bad value 3");
    return x;
}
struct CustomError : std::exception {
    const char* what() const noexcept override { return "custom failure"; }
};
int throw_custom(int) { throw CustomError(); }
int die_by(int how) {
    if (how == 0) ::raise(SIGKILL);
    if (how == 1) std::abort();
    return -1;
}
double sum_span(std::span<const double> v) { return std::accumulate(v.begin(), v.end(), 0.0); }

int g_init_value = 0;
void init_set(int v) { g_init_value = v; }
int read_init() { return g_init_value; }
void init_throws(int) { throw std::runtime_error("initializer exploded"); }

class FuturesTest : public mp::test::StartMethodTest {
protected:
    mp::ExecutorOptions opts() const {
        mp::ExecutorOptions o;
        o.context = ctx();
        return o;
    }
};

// --- submit, result, exceptions ------------------------------------------------------------------

TEST_P(FuturesTest, SubmitReturnsResults) {
    mp::ProcessPoolExecutor ex(2, opts());
    EXPECT_EQ(ex.max_workers(), 2);
    mp::Future<int> f = ex.submit(square, 7);
    EXPECT_EQ(f.result(), 49);
    EXPECT_EQ(f.result(), 49);  // as Python: the result can be read again
    EXPECT_TRUE(f.done());
    EXPECT_FALSE(f.running());
    EXPECT_FALSE(f.cancelled());
    EXPECT_EQ(f.exception(), nullptr);
    EXPECT_EQ(ex.submit(add, 2, 3).result(1min), 5);
    EXPECT_EQ(ex.submit(label, 4).result(), "item-4");
    auto v = ex.submit(nothing);
    v.result();
    EXPECT_TRUE(v.done());
    EXPECT_NE(ex.submit(my_pid).result(), static_cast<int>(::getpid()));
}

// A task never waits behind another while a worker is idle: the second submission goes to the
// free worker, not into the busy one's prefetch slot (as_completed order depends on it).
TEST_P(FuturesTest, AnIdleWorkerTakesTheNextTask) {
    mp::ProcessPoolExecutor ex(2, opts());
    for (int round = 0; round < 4; ++round) {
        mp::Event gate;
        auto blocked = ex.submit(wait_for_gate, gate);
        auto quick = ex.submit(square, round);
        try {
            EXPECT_EQ(quick.result(30s), round * round);
        } catch (const mp::TimeoutError&) {
            ADD_FAILURE() << "round " << round << ": the quick task waited behind the blocked one";
        }
        gate.set();
        EXPECT_TRUE(blocked.result(60s));
    }
}

TEST_P(FuturesTest, ExceptionsComeBack) {
    mp::ProcessPoolExecutor ex(2, opts());
    auto f = ex.submit(throw_invalid, 3);
    try {
        f.result();
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(), "bad value 3");
    }
    auto ep = f.exception();
    ASSERT_NE(ep, nullptr);
    EXPECT_THROW(std::rethrow_exception(ep), std::invalid_argument);

    auto c = ex.submit(throw_custom, 1);
    try {
        c.result();
        FAIL() << "no exception";
    } catch (const mp::RemoteError& e) {
        EXPECT_NE(e.type_name().find("CustomError"), std::string::npos) << e.type_name();
        EXPECT_EQ(e.remote_what(), "custom failure");
        EXPECT_FALSE(e.traceback().empty());
    }
    EXPECT_THROW(std::rethrow_exception(c.exception()), mp::RemoteError);
}

TEST_P(FuturesTest, ResultTimeout) {
    mp::ProcessPoolExecutor ex(1, opts());
    auto f = ex.submit(sleep_ms, 3000);
    EXPECT_THROW(f.result(10ms), mp::TimeoutError);
    EXPECT_THROW(static_cast<void>(f.exception(10ms)), mp::TimeoutError);
    EXPECT_FALSE(f.done());
    EXPECT_FALSE(f.wait(1ms));
    ex.shutdown(false, true);
}

TEST_P(FuturesTest, LargeArgumentThroughSharedMemory) {
    mp::ProcessPoolExecutor ex(1, opts());
    std::vector<double> big(std::size_t{1} << 18, 0.5);  // 2 MiB: the memfd path
    EXPECT_EQ(ex.submit(sum_span, big).result(), 0.5 * static_cast<double>(big.size()));
}

// --- cancellation and shutdown -------------------------------------------------------------------

TEST_P(FuturesTest, CancelPendingFutures) {
    mp::ProcessPoolExecutor ex(1, opts());
    std::vector<mp::Future<int>> fs;
    fs.push_back(ex.submit(sleep_ms, 2000));
    // Wait until the worker holds the first one; the tail stays queued in the parent (a worker
    // holds at most two batches, and batches of unmeasured tasks hold one task).
    for (int i = 0; i < 20; ++i) fs.push_back(ex.submit(sleep_ms, 50));
    while (!fs[0].running() && !fs[0].done()) std::this_thread::sleep_for(1ms);
    EXPECT_FALSE(fs[0].cancel());  // held by a worker
    int cancelled = 0;
    for (std::size_t i = 10; i < fs.size(); ++i) {
        if (fs[i].cancel()) {
            ++cancelled;
            EXPECT_TRUE(fs[i].cancelled());
            EXPECT_TRUE(fs[i].done());
            EXPECT_TRUE(fs[i].cancel());  // cancelling again still says true
            EXPECT_THROW(fs[i].result(), mp::CancelledError);
            EXPECT_THROW(static_cast<void>(fs[i].exception()), mp::CancelledError);
        }
    }
    EXPECT_EQ(cancelled, 11);  // fs[10] .. fs[20]
    EXPECT_EQ(fs[0].result(), 2000);
    for (std::size_t i = 1; i < 10; ++i) EXPECT_EQ(fs[i].result(), 50);
    EXPECT_FALSE(fs[0].cancel());  // done
}

TEST_P(FuturesTest, ShutdownNoWaitCancelFutures) {
    mp::ProcessPoolExecutor ex(1, opts());
    std::vector<mp::Future<int>> fs;
    fs.push_back(ex.submit(sleep_ms, 1000));
    for (int i = 1; i < 30; ++i) fs.push_back(ex.submit(sleep_ms, 100));
    while (!fs[0].running() && !fs[0].done()) std::this_thread::sleep_for(1ms);
    ex.shutdown(false, true);
    EXPECT_THROW(ex.submit(square, 1), mp::UsageError);
    EXPECT_EQ(fs[0].result(), 1000);  // already started: it completes
    int cancelled = 0;
    for (auto& f : fs) {
        f.wait();
        if (f.cancelled()) ++cancelled;
    }
    EXPECT_GE(cancelled, 27);
    ex.shutdown();  // joins; idempotent
    ex.shutdown();
}

TEST_P(FuturesTest, ShutdownWaitsForEverything) {
    std::vector<mp::Future<int>> fs;
    {
        mp::ProcessPoolExecutor ex(2, opts());
        for (int i = 0; i < 20; ++i) fs.push_back(ex.submit(sleep_ms, 5));
    }  // the destructor shuts down and waits
    for (auto& f : fs) {
        EXPECT_TRUE(f.done());
        EXPECT_EQ(f.result(), 5);
    }
}

// --- callbacks -----------------------------------------------------------------------------------

TEST_P(FuturesTest, DoneCallbacksBeforeAndAfterCompletion) {
    mp::ProcessPoolExecutor ex(1, opts());
    std::atomic<int> seen{0};
    std::atomic<int> errors{0};
    auto f = ex.submit(sleep_ms, 100);
    f.add_done_callback([&](mp::Future<int>& g) { seen += g.result(); });
    auto e = ex.submit(throw_invalid, 3);
    e.add_done_callback([&](const mp::Future<int>& g) {
        if (g.exception()) ++errors;
    });
    EXPECT_EQ(f.result(), 100);
    e.wait();
    ex.shutdown();  // callbacks have run once the supervisor is gone
    EXPECT_EQ(seen.load(), 100);
    EXPECT_EQ(errors.load(), 1);
    // Already done: called at once, in this thread.
    const auto me = std::this_thread::get_id();
    std::thread::id where;
    f.add_done_callback([&](mp::Future<int>& g) {
        where = std::this_thread::get_id();
        seen += g.result();
    });
    EXPECT_EQ(where, me);
    EXPECT_EQ(seen.load(), 200);
    // A callback that throws is reported, not fatal.
    f.add_done_callback([](mp::Future<int>&) { throw std::runtime_error("callback exploded"); });
}

TEST_P(FuturesTest, CancelRunsCallbacks) {
    mp::ProcessPoolExecutor ex(1, opts());
    auto first = ex.submit(sleep_ms, 1000);
    while (!first.running() && !first.done()) std::this_thread::sleep_for(1ms);
    auto a = ex.submit(sleep_ms, 1);
    auto b = ex.submit(sleep_ms, 1);
    auto c = ex.submit(sleep_ms, 1);  // a and b may be prefetched by the worker; c is queued
    bool called = false;
    c.add_done_callback([&](mp::Future<int>& g) { called = g.cancelled(); });
    ASSERT_TRUE(c.cancel());
    EXPECT_TRUE(called);
}

// --- map -----------------------------------------------------------------------------------------

TEST_P(FuturesTest, MapInOrder) {
    mp::ProcessPoolExecutor ex(2, opts());
    std::vector<int> in(2000);
    std::iota(in.begin(), in.end(), -1000);
    std::vector<int> got;
    for (int r : ex.map(square, in)) got.push_back(r);
    ASSERT_EQ(got.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(got[i], in[i] * in[i]);
    got.clear();
    for (int r : ex.map(square, in, mp::forever, 1)) got.push_back(r);
    EXPECT_EQ(got.size(), in.size());
    std::vector<std::string> labels;
    for (auto& s : ex.map(label, std::vector<int>{1, 2})) labels.push_back(s);
    EXPECT_EQ(labels, (std::vector<std::string>{"item-1", "item-2"}));
}

TEST_P(FuturesTest, MapAfterItsExecutorIsDestroyed) {
    std::optional<decltype(std::declval<mp::ProcessPoolExecutor&>().map(sleep_ms,
                                                                        std::vector<int>{}))>
        it;
    {
        mp::ProcessPoolExecutor ex(1, opts());
        it.emplace(ex.map(sleep_ms, std::vector<int>(50, 20), mp::forever, 1));
        EXPECT_EQ(it->next(), 20);
        ex.shutdown(false, true);  // the items not started yet are cancelled
    }
    // Items already computed still come; then the cancelled rest fails, and nothing touches
    // the destroyed executor.
    int delivered = 0;
    try {
        while (auto v = it->next()) {
            EXPECT_EQ(*v, 20);
            ++delivered;
        }
        ADD_FAILURE() << "cancelled items were not reported";
    } catch (const mp::CancelledError&) {
    }
    EXPECT_LT(delivered, 49);
}

TEST_P(FuturesTest, MapRaisesAtTheFailingItem) {
    mp::ProcessPoolExecutor ex(2, opts());
    auto it = ex.map(throw_invalid, std::vector<int>{0, 1, 2, 3, 4}, mp::forever, 1);
    EXPECT_EQ(it.next(), 0);
    EXPECT_EQ(it.next(), 1);
    EXPECT_EQ(it.next(), 2);
    EXPECT_THROW(it.next(), std::invalid_argument);
    EXPECT_EQ(it.next(), 4);
    EXPECT_EQ(it.next(), std::nullopt);
    auto c = ex.map(throw_custom, std::vector<int>{1});
    EXPECT_THROW(c.next(), mp::RemoteError);
}

TEST_P(FuturesTest, MapTimeoutCountsFromTheCall) {
    mp::ProcessPoolExecutor ex(1, opts());
    auto it = ex.map(sleep_ms, std::vector<int>{1, 1500, 1500}, 300ms, 1);
    EXPECT_EQ(it.next(), 1);
    EXPECT_THROW(it.next(), mp::TimeoutError);
    ex.shutdown(false, true);
}

// --- as_completed and wait -----------------------------------------------------------------------

TEST_P(FuturesTest, AsCompletedYieldsInCompletionOrder) {
    mp::ProcessPoolExecutor ex(3, opts());
    std::vector<mp::Future<int>> fs;
    fs.push_back(ex.submit(sleep_ms, 1500));
    fs.push_back(ex.submit(sleep_ms, 10));
    fs.push_back(ex.submit(sleep_ms, 600));
    std::vector<int> order;
    for (mp::Future<int>& f : mp::as_completed(fs)) {
        EXPECT_TRUE(f.done());
        order.push_back(f.result());
    }
    EXPECT_EQ(order, (std::vector<int>{10, 600, 1500}));
    // Already done ones come first, in input order; duplicates are yielded once.
    std::vector<mp::Future<int>> again{fs[2], fs[0], fs[2]};
    std::vector<mp::Future<int>*> seen;
    for (auto& f : mp::as_completed(again)) seen.push_back(&f);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0], &again[0]);
    EXPECT_EQ(seen[1], &again[1]);
}

TEST_P(FuturesTest, AsCompletedTimeout) {
    mp::ProcessPoolExecutor ex(2, opts());
    std::vector<mp::Future<int>> fs{ex.submit(sleep_ms, 1), ex.submit(sleep_ms, 3000)};
    int yielded = 0;
    try {
        for (auto& f : mp::as_completed(fs, 500ms)) {
            EXPECT_EQ(f.result(), 1);
            ++yielded;
        }
        FAIL() << "no timeout";
    } catch (const mp::TimeoutError& e) {
        EXPECT_NE(std::string(e.what()).find("1 (of 2) futures unfinished"), std::string::npos)
            << e.what();
    }
    EXPECT_EQ(yielded, 1);
    ex.shutdown(false, true);
}

TEST_P(FuturesTest, WaitReturnWhen) {
    mp::ProcessPoolExecutor ex(3, opts());
    std::vector<mp::Future<int>> fs{ex.submit(sleep_ms, 2000), ex.submit(sleep_ms, 1),
                                    ex.submit(throw_invalid, 3)};
    auto first = mp::wait(fs, 30s, mp::FIRST_COMPLETED);
    EXPECT_FALSE(first.done.empty());
    EXPECT_EQ(first.done.size() + first.not_done.size(), 3u);
    EXPECT_NE(std::find(first.not_done.begin(), first.not_done.end(), 0u), first.not_done.end());

    auto exc = mp::wait(fs, 30s, mp::FIRST_EXCEPTION);
    EXPECT_NE(std::find(exc.done.begin(), exc.done.end(), 2u), exc.done.end());
    EXPECT_EQ(exc.not_done.front(), 0u);  // fs[1] may or may not be done by then

    auto timed = mp::wait(fs, 50ms);  // ALL_COMPLETED, timing out
    EXPECT_EQ(timed.not_done, (std::vector<std::size_t>{0}));

    auto all = mp::wait(fs);
    EXPECT_EQ(all.done, (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_TRUE(all.not_done.empty());

    // FIRST_EXCEPTION without any exception waits for all.
    std::vector<mp::Future<int>> ok{ex.submit(sleep_ms, 1), ex.submit(sleep_ms, 100)};
    auto r = mp::wait(ok, 30s, mp::FIRST_EXCEPTION);
    EXPECT_EQ(r.done.size(), 2u);
}

// --- crashes and initializers --------------------------------------------------------------------

TEST_P(FuturesTest, KilledWorkerFailsOnlyItsTask) {
    mp::ProcessPoolExecutor ex(2, opts());
    for (int how : {0, 1}) {
        std::vector<mp::Future<int>> fs;
        for (int i = 0; i < 20; ++i) fs.push_back(ex.submit(square, i));
        auto bad = ex.submit(die_by, how);
        for (int i = 20; i < 40; ++i) fs.push_back(ex.submit(square, i));
        try {
            bad.result();
            FAIL() << "no exception";
        } catch (const mp::BrokenProcessPool& e) {
            const std::string w = e.what();
            EXPECT_NE(w.find(how == 0 ? "signal 9" : "signal 6"), std::string::npos) << w;
            EXPECT_NE(w.find("worker process"), std::string::npos) << w;
        }
        for (int i = 0; i < 40; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(), i * i);
    }
    EXPECT_EQ(ex.submit(square, 9).result(), 81);  // the pool still works
}

TEST_P(FuturesTest, InitializerAndMaxTasksPerChild) {
    auto o = opts();
    o.initializer = mp::Initializer(init_set, 42);
    o.max_tasks_per_child = 3;
    mp::ProcessPoolExecutor ex(1, o);
    std::set<int> pids;
    for (int i = 0; i < 9; ++i) {
        EXPECT_EQ(ex.submit(read_init).result(), 42);
        pids.insert(ex.submit(my_pid).result());
    }
    EXPECT_GE(pids.size(), 3u);  // replaced after every 3 tasks
}

TEST_P(FuturesTest, InitializerFailureIsAClearError) {
    auto o = opts();
    o.initializer = mp::Initializer(init_throws, 1);
    mp::ProcessPoolExecutor ex(2, o);
    try {
        // submit itself throws once the pool knows it is broken (as Python's does)
        ex.submit(square, 2).result(30s);
        FAIL() << "no exception";
    } catch (const mp::BrokenProcessPool& e) {
        EXPECT_NE(std::string(e.what()).find("initializer exploded"), std::string::npos)
            << e.what();
    }
    EXPECT_THROW(ex.submit(square, 3).result(30s), mp::BrokenProcessPool);
}

// Tasks go to a worker before it is ready; when its initializer fails it exits without reading
// them, so the supervisor's send fails (EPIPE). The failure report the worker wrote first must
// still be read: it was once lost behind "exited with code 0" about one run in five under fork.
TEST_P(FuturesTest, InitializerFailureIsReportedThoughTasksWereSentToTheWorker) {
    auto o = opts();
    o.initializer = mp::Initializer(init_throws, 1);
    for (int round = 0; round < 20; ++round) {
        mp::ProcessPoolExecutor ex(2, o);
        // Each submission fails, either at once (the pool already knows it is broken, as
        // Python's submit raises) or through its future, and always with the initializer's error.
        auto expect_init_error = [&](const mp::BrokenProcessPool& e) {
            EXPECT_NE(std::string(e.what()).find("initializer exploded"), std::string::npos)
                << "round " << round << ": " << e.what();
        };
        std::vector<mp::Future<int>> fs;
        for (int i = 0; i < 8; ++i) {
            try {
                fs.push_back(ex.submit(square, i));
            } catch (const mp::BrokenProcessPool& e) {
                expect_init_error(e);
            }
        }
        for (auto& f : fs) {
            try {
                f.result(30s);
                ADD_FAILURE() << "no exception";
            } catch (const mp::BrokenProcessPool& e) {
                expect_init_error(e);
            }
        }
        if (HasFailure()) return;
    }
}

// --- many submissions ----------------------------------------------------------------------------

TEST_P(FuturesTest, SubmitsFromFourThreads) {
    mp::ProcessPoolExecutor ex(2, opts());
    std::vector<std::vector<mp::Future<int>>> per(4);
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < 2000; ++i)
                per[static_cast<std::size_t>(t)].push_back(ex.submit(add, t, i));
        });
    for (auto& t : ts) t.join();
    for (int t = 0; t < 4; ++t)
        for (int i = 0; i < 2000; ++i)
            EXPECT_EQ(per[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)].result(),
                      t + i);
}

TEST_P(FuturesTest, HundredThousandTinySubmits) {
    mp::ProcessPoolExecutor ex(2, opts());
    std::vector<mp::Future<int>> fs;
    fs.reserve(100000);
    for (int i = 0; i < 100000; ++i) fs.push_back(ex.submit(square, i % 1000));
    long long sum = 0;
    for (auto& f : fs) sum += f.result();
    long long want = 0;
    for (int i = 0; i < 100000; ++i) want += static_cast<long long>(i % 1000) * (i % 1000);
    EXPECT_EQ(sum, want);
    auto all = mp::wait(fs);
    EXPECT_EQ(all.done.size(), 100000u);
}

TEST(FuturesUsage, BadArguments) {
    EXPECT_THROW(mp::ProcessPoolExecutor(0), mp::UsageError);
    mp::Future<int> none;
    EXPECT_FALSE(none.valid());
    EXPECT_THROW(none.result(), mp::UsageError);
    std::vector<mp::Future<int>> empty;
    auto r = mp::wait(empty, 1s, mp::FIRST_COMPLETED);
    EXPECT_TRUE(r.done.empty() && r.not_done.empty());
    int n = 0;
    for (auto& f : mp::as_completed(empty)) {
        static_cast<void>(f);
        ++n;
    }
    EXPECT_EQ(n, 0);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, FuturesTest,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
