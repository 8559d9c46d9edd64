// Progress reports of Pool::map/starmap/imap/imap_unordered, ProcessPoolExecutor::map and
// as_completed: the callback's counts, the plain lines written when stderr is not a terminal,
// silence when disabled; under every start method.
#include "multiproc/progress.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <forward_list>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "helpers/capture.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/futures.hpp"
#include "multiproc/pool.hpp"

namespace {

int slow_square(int x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return x * x;
}
int add(int a, int b) { return a + b; }

using Calls = std::vector<std::pair<std::size_t, std::size_t>>;

// A callback that records every (done, total) it is given.
mp::Progress recording(Calls& calls) {
    return mp::progress_callback([&calls](std::size_t done, std::size_t total) {
        calls.emplace_back(done, total);
    });
}

// Counts only grow, the total never changes, and the last call says everything is done.
void expect_monotonic_to(const Calls& calls, std::size_t total) {
    ASSERT_FALSE(calls.empty());
    for (std::size_t i = 0; i < calls.size(); ++i) {
        EXPECT_EQ(calls[i].second, total) << i;
        if (i) {
            EXPECT_GE(calls[i].first, calls[i - 1].first) << i;
        }
    }
    EXPECT_EQ(calls.back().first, total);
}

std::vector<int> iota_vector(int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
    return v;
}

class ProgressTest : public mp::test::StartMethodTest {
protected:
    mp::PoolOptions pool_opts() const { return with_context<mp::PoolOptions>(); }
};

TEST_P(ProgressTest, PoolCallbacksCountToTheTotal) {
    mp::Pool pool(2, pool_opts());
    const auto xs = iota_vector(200);
    Calls map_calls, star_calls, imap_calls, unordered_calls;
    EXPECT_EQ(pool.map(slow_square, xs, recording(map_calls), 1).size(), 200u);
    expect_monotonic_to(map_calls, 200);

    std::vector<std::tuple<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
    EXPECT_EQ(pool.starmap(add, pairs, recording(star_calls)), (std::vector<int>{3, 7, 11}));
    expect_monotonic_to(star_calls, 3);

    std::size_t n = 0;
    for (int y : pool.imap(slow_square, xs, recording(imap_calls))) {
        EXPECT_EQ(y, static_cast<int>(n * n));
        ++n;
    }
    EXPECT_EQ(n, 200u);
    expect_monotonic_to(imap_calls, 200);

    n = 0;
    for (int y : pool.imap_unordered(slow_square, xs, recording(unordered_calls))) {
        static_cast<void>(y);
        ++n;
    }
    EXPECT_EQ(n, 200u);
    expect_monotonic_to(unordered_calls, 200);
}

// An input whose size is unknown: the total is reported as 0, the count still ends at the end.
TEST_P(ProgressTest, UnsizedInputReportsZeroTotal) {
    mp::Pool pool(2, pool_opts());
    std::forward_list<int> xs{1, 2, 3, 4, 5};
    Calls calls;
    std::size_t n = 0;
    for (int y : pool.imap(slow_square, xs, recording(calls))) n += y > 0 ? 1 : 0;
    EXPECT_EQ(n, 5u);
    ASSERT_FALSE(calls.empty());
    for (auto [done, total] : calls) EXPECT_EQ(total, 0u);
    EXPECT_EQ(calls.back().first, 5u);
}

TEST_P(ProgressTest, ExecutorCallbacksCountToTheTotal) {
    mp::ProcessPoolExecutor ex(2, with_context<mp::ExecutorOptions>());
    const auto xs = iota_vector(100);
    Calls map_calls, completed_calls;
    std::size_t n = 0;
    for (int y : ex.map(slow_square, xs, recording(map_calls))) n += y >= 0 ? 1 : 0;
    EXPECT_EQ(n, 100u);
    expect_monotonic_to(map_calls, 100);

    std::vector<mp::Future<int>> fs;
    for (int x : iota_vector(50)) fs.push_back(ex.submit(slow_square, x));
    n = 0;
    for (auto& f : mp::as_completed(fs, recording(completed_calls))) n += f.done() ? 1 : 0;
    EXPECT_EQ(n, 50u);
    expect_monotonic_to(completed_calls, 50);
}

// stderr is a memory file here, not a terminal: plain lines, no carriage return, no escape
// sequence, a last line with the whole count.
TEST_P(ProgressTest, PlainLinesWhenStderrIsNotATerminal) {
    mp::Pool pool(2, pool_opts());
    const auto xs = iota_vector(300);
    std::string map_out, imap_out;
    {
        mp::test::Capture err(2);
        EXPECT_EQ(pool.map(slow_square, xs, mp::progress_bar()).size(), 300u);
        map_out = err.finish();
    }
    {
        mp::test::Capture err(2);
        std::forward_list<int> unsized(xs.begin(), xs.begin() + 40);
        for (int y : pool.imap(slow_square, unsized, mp::progress_bar())) static_cast<void>(y);
        imap_out = err.finish();
    }
    for (const auto* out : {&map_out, &imap_out}) {
        EXPECT_EQ(out->find('\r'), std::string::npos) << *out;
        EXPECT_EQ(out->find('\x1b'), std::string::npos) << *out;
        ASSERT_FALSE(out->empty());
        EXPECT_EQ(out->back(), '\n');
    }
    EXPECT_NE(map_out.find("Pool.map: 100% 300/300 ["), std::string::npos) << map_out;
    EXPECT_NE(map_out.find("/s]\n"), std::string::npos) << map_out;
    EXPECT_NE(imap_out.find("Pool.imap: 40 ["), std::string::npos) << imap_out;
}

TEST_P(ProgressTest, NothingWhenDisabled) {
    mp::Pool pool(2, pool_opts());
    const auto xs = iota_vector(50);
    std::string out;
    {
        mp::test::Capture err(2);
        EXPECT_EQ(pool.map(slow_square, xs, mp::Progress()).size(), 50u);
        for (int y : pool.imap(slow_square, xs)) static_cast<void>(y);
        out = err.finish();
    }
    EXPECT_EQ(out, "");
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ProgressTest,
                         ::testing::Values("fork", "spawn", "forkserver"));

}  // namespace
