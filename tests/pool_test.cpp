// mp::Pool and the task engine at work, run once per start method: results and their order,
// imap, callbacks and exceptions, worker replacement, initializers, timeouts and shutdown, sizes
// and load. What the pool does when things go wrong is in pool_faults_test.cpp.
#include "multiproc/pool.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <forward_list>
#include <numeric>
#include <optional>
#include <ranges>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "helpers/pool_fixture.hpp"
#include "helpers/thread_gone.hpp"
#include "multiproc/synchronize.hpp"

namespace {

using namespace std::chrono_literals;
using namespace mp::test;  // PoolTest, square, sleep_ms

// --- task functions (plain functions: they travel by identity under every start method) ---

int add(int a, int b) { return a + b; }
long long add3(long long a, int b, short c) { return a + b + c; }
std::string label(int x) { return "item-" + std::to_string(x); }
int my_pid(int) { return static_cast<int>(::getpid()); }
bool wait_for_gate(mp::Event gate) { return gate.wait(std::chrono::seconds(60)); }
void nothing(int) {}

int throw_invalid(int x) {
    if (x == 3) throw std::invalid_argument("bad value 3");
    return x;
}

// Not of a standard family: it comes back as mp::RemoteError.
struct CustomError : std::exception {
    const char* what() const noexcept override { return "custom failure"; }
};
int throw_custom(int) { throw CustomError(); }
// A subclass of a standard type keeps its family (its name joins what()).
struct CustomRuntime : std::runtime_error {
    using std::runtime_error::runtime_error;
};
int throw_custom_runtime(int) { throw CustomRuntime("runtime failure"); }

int g_init_value = 0;
void init_set(int v) { g_init_value = v; }
int read_init(int) { return g_init_value; }

std::vector<double> big_result(int n) {
    return std::vector<double>(static_cast<std::size_t>(n), 1.5);
}
double sum_span(std::span<const double> v) { return std::accumulate(v.begin(), v.end(), 0.0); }
double sum_vec(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

std::string env_of(std::string name) {
    const char* v = std::getenv(name.c_str());
    return v ? v : "<unset>";
}

// --- results and order -------------------------------------------------------------------------

TEST_P(PoolTest, MapKeepsInputOrder) {
    mp::Pool pool(2, opts());
    std::vector<int> in(1000);
    std::iota(in.begin(), in.end(), -500);
    std::vector<int> want;
    for (int x : in) want.push_back(x * x);
    EXPECT_EQ(pool.map(square, in), want);
    EXPECT_EQ(pool.map(square, in, 7), want);
    EXPECT_EQ(pool.map(square, in, 1), want);
    EXPECT_TRUE(pool.map(square, std::vector<int>{}).empty());
    EXPECT_EQ(pool.map(label, std::vector<int>{1, 2}),
              (std::vector<std::string>{"item-1", "item-2"}));
    // An unsized input is materialized first, as Python's map does with list(iterable).
    std::forward_list<int> odd{1, 3, 5, 7, 9};
    EXPECT_EQ(pool.map(square, odd), (std::vector<int>{1, 9, 25, 49, 81}));
}

TEST_P(PoolTest, SeedExample) {
    mp::Pool pool(4, opts());
    std::vector<int> r = pool.map(square, std::vector<int>{1, 2, 3, 4});
    EXPECT_EQ(r, (std::vector<int>{1, 4, 9, 16}));
    auto a = pool.apply_async(square, 10);
    EXPECT_EQ(a.get(), 100);
    EXPECT_EQ(pool.apply(add, 2, 3), 5);
}

// apply_async while a worker is idle: the call runs at once, never behind a running one.
TEST_P(PoolTest, AnIdleWorkerTakesTheNextCall) {
    mp::Pool pool(2, opts());
    for (int round = 0; round < 4; ++round) {
        mp::Event gate;
        auto blocked = pool.apply_async(wait_for_gate, gate);
        auto quick = pool.apply_async(square, round);
        try {
            EXPECT_EQ(quick.get(30s), round * round);
        } catch (const mp::TimeoutError&) {
            ADD_FAILURE() << "round " << round << ": the quick call waited behind the blocked one";
        }
        gate.set();
        EXPECT_TRUE(blocked.get(60s));
    }
}

// A Pool made by a thread that then ends keeps its workers (a child's death signal follows the
// thread that started it, unless it is caught: docs/process.md).
TEST_P(PoolTest, PoolMadeByAThreadOutlivesTheThread) {
    std::optional<mp::Pool> pool;
    std::vector<pid_t> pids;
    pid_t maker = 0;
    std::thread([&] {
        maker = static_cast<pid_t>(::gettid());
        pool.emplace(2, opts());
        // Both workers running a call: each has armed its death signal.
        mp::Event gate;
        auto a = pool->apply_async(wait_for_gate, gate);
        auto b = pool->apply_async(wait_for_gate, gate);
        gate.set();
        EXPECT_TRUE(a.get(60s));
        EXPECT_TRUE(b.get(60s));
        pids = pool->worker_pids();
    }).join();
    mp::test::wait_thread_gone(maker);
    EXPECT_EQ(pool->map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
    EXPECT_EQ(pool->worker_pids(), pids) << "a worker died with the thread that made the pool";
    pool->close();
    pool->join();
}

TEST_P(PoolTest, StarmapOverTuples) {
    mp::Pool pool(2, opts());
    std::vector<std::tuple<int, int>> in;
    for (int i = 0; i < 300; ++i) in.emplace_back(i, 2 * i);
    auto r = pool.starmap(add, in);
    ASSERT_EQ(r.size(), 300u);
    for (int i = 0; i < 300; ++i) EXPECT_EQ(r[static_cast<std::size_t>(i)], 3 * i);
    std::vector<std::tuple<long long, int, short>> in3{{1, 2, 3}, {10, 20, 30}};
    EXPECT_EQ(pool.starmap_async(add3, in3).get(), (std::vector<long long>{6, 60}));
}

TEST_P(PoolTest, ImapInOrderAndUnordered) {
    mp::Pool pool(2, opts());
    std::vector<int> in(500);
    std::iota(in.begin(), in.end(), 0);
    std::vector<int> got;
    for (int r : pool.imap(square, in)) got.push_back(r);
    std::vector<int> want;
    for (int x : in) want.push_back(x * x);
    EXPECT_EQ(got, want);

    got.clear();
    for (int r : pool.imap_unordered(square, in, 3)) got.push_back(r);
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want);

    auto it = pool.imap(square, std::vector<int>{4});
    EXPECT_EQ(it.next(), 16);
    EXPECT_EQ(it.next(), std::nullopt);
}

// Results come over to the iterator a share of the window at a time (buffersize 16: two at a
// time) while chunks hold five: order, completion order and the failing item's place all hold.
TEST_P(PoolTest, ImapWithChunksLargerThanItsHandOver) {
    mp::Pool pool(2, opts());
    std::vector<int> in(300);
    std::iota(in.begin(), in.end(), 0);
    auto ordered = pool.imap(throw_invalid, in, 5, 16);
    for (int x : in) {
        if (x == 3) EXPECT_THROW(ordered.next(), std::invalid_argument);
        else EXPECT_EQ(ordered.next(), x);
    }
    EXPECT_EQ(ordered.next(), std::nullopt);

    std::vector<int> got;
    int failed = 0;
    auto unordered = pool.imap_unordered(throw_invalid, in, 5, 16);
    for (;;) {
        try {
            auto r = unordered.next();
            if (!r) break;
            got.push_back(*r);
        } catch (const std::invalid_argument&) {
            ++failed;
        }
    }
    EXPECT_EQ(failed, 1);
    std::sort(got.begin(), got.end());
    in.erase(in.begin() + 3);
    EXPECT_EQ(got, in);
}

// An endless input range (0, 1, 2, ...) that counts how many items were read from it. (Not
// std::views::iota: clang 14 cannot compile libstdc++ 12's views.)
struct Endless {
    std::atomic<long>* reads;
    struct iterator {
        using value_type = int;
        using difference_type = std::ptrdiff_t;
        std::atomic<long>* reads = nullptr;
        int n = 0;
        int operator*() const {
            reads->fetch_add(1);
            return n;
        }
        iterator& operator++() {
            ++n;
            return *this;
        }
        iterator operator++(int) {
            auto old = *this;
            ++n;
            return old;
        }
        friend bool operator==(const iterator&, std::unreachable_sentinel_t) noexcept {
            return false;
        }
    };
    iterator begin() const { return {reads, 0}; }
    std::unreachable_sentinel_t end() const { return {}; }
};
static_assert(std::ranges::input_range<Endless>);

TEST_P(PoolTest, ImapReadsAnEndlessInputLazily) {
    mp::Pool pool(2, opts());
    std::atomic<long> reads{0};
    // An endless input: only a bounded window of it is ever read ahead of the consumer.
    Endless endless{&reads};
    long n = 0;
    {
        auto results = pool.imap(square, endless, 0, 256);
        for (int r : results) {
            ASSERT_EQ(r, static_cast<int>(n * n));  // n < 5000: no overflow
            if (++n == 5000) break;
        }
    }
    EXPECT_EQ(n, 5000);
    EXPECT_LE(reads.load(), 5000 + 256 + 1);
    EXPECT_EQ(pool.apply(square, 5), 25);  // the pool is still fine after dropping the iterator
}

// --- callbacks and exceptions -------------------------------------------------------------------

TEST_P(PoolTest, ApplyAsyncCallbacksRunInTheParent) {
    mp::Pool pool(2, opts());
    std::atomic<int> got{0};
    std::atomic<pid_t> where{0};
    auto r = pool.apply_async(mp::callbacks([&](int v) {
                                  got = v;
                                  where = ::getpid();
                              }),
                              square, 12);
    EXPECT_EQ(r.get(), 144);
    EXPECT_EQ(got.load(), 144);  // the callback ran before get() returned
    EXPECT_EQ(where.load(), ::getpid());

    std::exception_ptr seen;
    auto e = pool.apply_async(mp::error_callback([&](std::exception_ptr ex) { seen = ex; }),
                              throw_invalid, 3);
    EXPECT_THROW(e.get(), std::invalid_argument);
    ASSERT_TRUE(seen);
    EXPECT_THROW(std::rethrow_exception(seen), std::invalid_argument);
    EXPECT_TRUE(e.ready());
    EXPECT_FALSE(e.successful());

    std::vector<int> whole;
    auto m = pool.map_async(mp::callbacks([&](const std::vector<int>& v) { whole = v; }), square,
                            std::vector<int>{1, 2, 3});
    m.wait();
    EXPECT_EQ(whole, (std::vector<int>{1, 4, 9}));
    EXPECT_TRUE(m.successful());
}

TEST_P(PoolTest, ExceptionsComeBackTyped) {
    mp::Pool pool(2, opts());
    try {
        pool.apply(throw_invalid, 3);
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(), "bad value 3");
    }
    try {
        pool.apply(throw_custom, 1);
        FAIL() << "no exception";
    } catch (const mp::RemoteError& e) {
        EXPECT_NE(e.type_name().find("CustomError"), std::string::npos) << e.type_name();
        EXPECT_EQ(e.remote_what(), "custom failure");
        EXPECT_FALSE(e.traceback().empty());
    }
    try {
        pool.apply(throw_custom_runtime, 1);
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("CustomRuntime"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("runtime failure"), std::string::npos) << e.what();
    }
    std::vector<int> in{0, 1, 2, 3, 4};
    EXPECT_THROW(pool.map(throw_invalid, in), std::invalid_argument);
    EXPECT_THROW(pool.map(throw_custom, in, 2), mp::RemoteError);
    // imap: the failing item throws, the others still arrive.
    auto it = pool.imap(throw_invalid, in, 1);
    EXPECT_EQ(it.next(), 0);
    EXPECT_EQ(it.next(), 1);
    EXPECT_EQ(it.next(), 2);
    EXPECT_THROW(it.next(), std::invalid_argument);
    EXPECT_EQ(it.next(), 4);
    EXPECT_EQ(it.next(), std::nullopt);
}

// --- worker replacement ------------------------------------------------------------------------

TEST_P(PoolTest, MaxTasksPerChildReplacesWorkers) {
    auto o = opts();
    o.maxtasksperchild = 2;
    mp::Pool pool(2, o);
    std::vector<int> in(12, 0);
    auto pids = pool.map(my_pid, in, 1);
    std::set<int> distinct(pids.begin(), pids.end());
    EXPECT_GE(distinct.size(), 6u);
    EXPECT_EQ(pool.apply(square, 3), 9);
}

// --- initializer ----------------------------------------------------------------------------------

TEST_P(PoolTest, InitializerRunsInEveryWorker) {
    auto o = opts();
    o.initializer = mp::Initializer(init_set, 42);
    mp::Pool pool(2, o);
    auto r = pool.map(read_init, std::vector<int>(20, 0), 1);
    for (int v : r) EXPECT_EQ(v, 42);
}

// --- timeouts, shutdown ---------------------------------------------------------------------------

TEST_P(PoolTest, TimeoutsAndReadiness) {
    mp::Pool pool(1, opts());
    auto r = pool.apply_async(sleep_ms, 3000);
    EXPECT_FALSE(r.ready());
    EXPECT_THROW(static_cast<void>(r.successful()), mp::UsageError);
    EXPECT_FALSE(r.wait(20ms));
    EXPECT_THROW(r.get(50ms), mp::TimeoutError);
    auto it = pool.imap(sleep_ms, std::vector<int>{3000});
    EXPECT_THROW(it.next(20ms), mp::TimeoutError);
    auto quick = pool.apply_async(square, 2);
    pool.terminate();
    EXPECT_THROW(r.get(), mp::BrokenProcessPool);
    EXPECT_TRUE(quick.wait(5s));
    pool.join();
}

TEST_P(PoolTest, CloseThenJoin) {
    mp::Pool pool(2, opts());
    EXPECT_THROW(pool.join(), mp::UsageError);
    auto r = pool.map_async(sleep_ms, std::vector<int>{30, 30, 30, 30}, 1);
    pool.close();
    EXPECT_THROW(pool.apply_async(square, 1), mp::UsageError);
    pool.join();
    EXPECT_EQ(r.get(), (std::vector<int>{30, 30, 30, 30}));
}

// --- sizes and load -------------------------------------------------------------------------------

TEST_P(PoolTest, LargeResultsAndArguments) {
    mp::Pool pool(2, opts());
    auto big = pool.apply(big_result, 3 << 20);  // 24 MiB back
    ASSERT_EQ(big.size(), std::size_t{3} << 20);
    EXPECT_EQ(big.front(), 1.5);
    EXPECT_EQ(big.back(), 1.5);
    std::vector<double> arg(std::size_t{1} << 20, 2.0);  // 8 MiB out, through shared memory
    EXPECT_EQ(pool.apply(sum_span, arg), 2.0 * static_cast<double>(arg.size()));
    EXPECT_EQ(pool.apply(sum_vec, arg), 2.0 * static_cast<double>(arg.size()));
    std::vector<double> small(10, 1.0);
    EXPECT_EQ(pool.apply(sum_span, small), 10.0);
}

TEST_P(PoolTest, OneMillionTinyTasks) {
    mp::Pool pool(2, opts());
    std::vector<int> in(1'000'000);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i % 40000);
    auto r = pool.map(square, in);
    ASSERT_EQ(r.size(), in.size());
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < in.size(); ++i) wrong += r[i] != in[i] * in[i];
    EXPECT_EQ(wrong, 0u);
    pool.map(nothing, std::vector<int>(1000, 0));
}

TEST_P(PoolTest, SubmissionsFromFourThreads) {
    mp::Pool pool(2, opts());
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&, t] {
            std::vector<mp::AsyncResult<int>> rs;
            for (int i = 0; i < 200; ++i) rs.push_back(pool.apply_async(add, t * 1000, i));
            for (int i = 0; i < 200; ++i)
                if (rs[static_cast<std::size_t>(i)].get() != t * 1000 + i) ++bad;
            std::vector<int> in(500, t);
            for (int v : pool.map(square, in))
                if (v != t * t) ++bad;
        });
    }
    for (auto& th : ts) th.join();
    EXPECT_EQ(bad.load(), 0);
}

TEST_P(PoolTest, ThreadCountVariablesAreSetUnlessTheUserDid) {
    ::unsetenv("OMP_NUM_THREADS");
    ::setenv("MKL_NUM_THREADS", "7", 1);
    {
        mp::Pool pool(2, opts());
        const std::string want = std::to_string(std::max(1, mp::process_cpu_count() / 2));
        EXPECT_EQ(pool.apply(env_of, std::string("OMP_NUM_THREADS")), want);
        EXPECT_EQ(pool.apply(env_of, std::string("OPENBLAS_NUM_THREADS")), want);
        EXPECT_EQ(pool.apply(env_of, std::string("MKL_NUM_THREADS")), "7");
    }
    ::unsetenv("MKL_NUM_THREADS");
    EXPECT_EQ(env_of("OMP_NUM_THREADS"), "<unset>");  // only the workers got it
}

INSTANTIATE_TEST_SUITE_P(StartMethods, PoolTest, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
