// mp::parallel_map, mp::parallel_for and mp::Parallel, once per start method.
#include "multiproc/parallel.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <list>
#include <numeric>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/sharedctypes.hpp"

namespace {

using namespace std::chrono_literals;

int square(int x) { return x * x; }
long long twice(long long x) { return 2 * x; }
std::string label(int x) { return "item-" + std::to_string(x); }
int throw_at(int x) {
    if (x == 700) throw std::out_of_range("item 700 is out of range");
    if (x == 900) throw std::invalid_argument("item 900");
    return x;
}
struct CustomError : std::exception {
    const char* what() const noexcept override { return "custom"; }
};
int throw_custom(int x) {
    if (x == 5) throw CustomError();
    return x;
}
int kill_at(int x) {
    if (x == 77) ::raise(SIGKILL);
    return x;
}
double sum_span(std::span<const double> v) { return std::accumulate(v.begin(), v.end(), 0.0); }
int nested(int x) {
    // A parallel_map inside a worker runs in that worker.
    auto r = mp::parallel_map(square, std::vector<int>{x, x + 1});
    return r[0] + r[1];
}
int slow_square(int x) {
    std::this_thread::sleep_for(1ms);
    return x * x;
}

// Side effects through shared memory: every process sees the same Array (each item carries
// the Array's handle, so a few slices rather than one item per element).
struct Slice {
    mp::Array<int> out;
    int begin = 0, end = 0;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(out, begin, end);
    }
};
void mark(const Slice& s) {
    for (int i = s.begin; i < s.end; ++i) s.out[static_cast<std::size_t>(i)] = i * 3;
}

class ParallelTest : public mp::test::StartMethodTest {
protected:
    mp::ParallelOptions opts(int jobs = 2) const {
        mp::ParallelOptions o;
        o.jobs = jobs;
        o.context = ctx();
        return o;
    }
};

TEST_P(ParallelTest, MapsAMillionInts) {
    std::vector<int> in(1'000'000);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i % 40000) - 20000;
    auto r = mp::parallel_map(square, in, opts());
    ASSERT_EQ(r.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(r[i], in[i] * in[i]) << i;
    // A non-contiguous input, fixed batches.
    std::list<long long> lazy;
    for (long long i = 0; i < 10'000; ++i) lazy.push_back(i);
    auto o = opts();
    o.batch_size = 37;
    auto t = mp::parallel_map(twice, lazy, o);
    for (long long i = 0; i < 10'000; ++i) ASSERT_EQ(t[static_cast<std::size_t>(i)], 2 * i);
    EXPECT_EQ(mp::parallel_map(label, std::vector<int>{1, 2}, opts()),
              (std::vector<std::string>{"item-1", "item-2"}));
    EXPECT_TRUE(mp::parallel_map(square, std::vector<int>{}, opts()).empty());
}

TEST_P(ParallelTest, FirstFailureIsRethrown) {
    std::vector<int> in(2000);
    std::iota(in.begin(), in.end(), 0);
    try {
        mp::parallel_map(throw_at, in, opts());
        FAIL() << "no exception";
    } catch (const std::out_of_range& e) {
        EXPECT_STREQ(e.what(), "item 700 is out of range");
    } catch (const std::invalid_argument&) {
        // Item 900's chunk may have completed first; both are real failures of the input.
    }
    EXPECT_THROW(mp::parallel_map(throw_custom, std::vector<int>{1, 5, 9}, opts()),
                 mp::RemoteError);
}

TEST_P(ParallelTest, KilledWorkerFailsTheCall) {
    std::vector<int> in(200);
    std::iota(in.begin(), in.end(), 0);
    try {
        mp::parallel_map(kill_at, in, opts());
        FAIL() << "no exception";
    } catch (const mp::BrokenProcessPool& e) {
        EXPECT_NE(std::string(e.what()).find("signal 9"), std::string::npos) << e.what();
    }
}

TEST_P(ParallelTest, ForEachThroughAnArray) {
    mp::Array<int> out(500);
    std::vector<Slice> items;
    for (int i = 0; i < 500; i += 50) items.push_back({out, i, i + 50});
    mp::parallel_for(items, mark, opts());
    for (int i = 0; i < 500; ++i) ASSERT_EQ(out[static_cast<std::size_t>(i)], i * 3);
}

TEST_P(ParallelTest, LargeItemsThroughSharedMemory) {
    std::vector<std::vector<double>> items(3, std::vector<double>(std::size_t{1} << 18,
                                                                  0.25));  // 2 MiB each
    items[1][0] = 1.25;
    auto r = mp::parallel_map(sum_span, items, opts());
    const double base = 0.25 * static_cast<double>(std::size_t{1} << 18);
    EXPECT_EQ(r, (std::vector<double>{base, base + 1.0, base}));
    // Small vectors take the same path, inline.
    EXPECT_EQ(mp::parallel_map(sum_span, std::vector<std::vector<double>>{{1, 2}, {3}}, opts()),
              (std::vector<double>{3, 3}));
}

TEST_P(ParallelTest, ReusableParallel) {
    mp::Parallel par(opts());
    EXPECT_EQ(par.jobs(), 2);
    std::vector<int> in(5000);
    std::iota(in.begin(), in.end(), 0);
    auto a = par.map(square, in);
    auto b = par.map(square, in);
    EXPECT_EQ(a, b);
    EXPECT_EQ(a[4999], 4999 * 4999);
    EXPECT_THROW(par.map(throw_at, in), std::exception);
    EXPECT_EQ(par.map(square, std::vector<int>{3}), std::vector<int>{9});  // still usable
    // Nested calls run in the worker.
    EXPECT_EQ(par.map(nested, std::vector<int>{1, 2}), (std::vector<int>{1 + 4, 4 + 9}));
}

TEST_P(ParallelTest, ProgressPlainLinesWhenNotATerminal) {
    // Redirect stderr to a file (not a terminal) for the duration of the call.
    char path[] = "/tmp/mp_progress_XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ::unlink(path);
    const int saved = ::dup(2);
    ::dup2(fd, 2);
    auto o = opts();
    o.progress = true;
    std::vector<int> in(300);
    std::iota(in.begin(), in.end(), 0);
    auto r = mp::parallel_map(slow_square, in, o);
    ::dup2(saved, 2);
    ::close(saved);
    ASSERT_EQ(r.size(), 300u);
    std::string text(8192, '\0');
    const auto n = ::pread(fd, text.data(), text.size(), 0);
    ::close(fd);
    ASSERT_GT(n, 0);
    text.resize(static_cast<std::size_t>(n));
    EXPECT_EQ(text.find('\r'), std::string::npos) << text;
    EXPECT_EQ(text.find("\x1b"), std::string::npos) << text;
    EXPECT_NE(text.find("300/300"), std::string::npos) << text;
    EXPECT_NE(text.find("100%"), std::string::npos) << text;
    EXPECT_EQ(text.back(), '\n');
}

TEST(ParallelInPlace, JobsOneRunsHere) {
    // jobs = 1 (joblib's sequential mode): no worker, exceptions are the original objects.
    std::vector<int> in{1, 5, 9};
    EXPECT_EQ(mp::parallel_map(square, in, {.jobs = 1}), (std::vector<int>{1, 25, 81}));
    EXPECT_THROW(mp::parallel_map(throw_custom, in, {.jobs = 1}), CustomError);
    EXPECT_THROW(mp::parallel_map(square, in, {.jobs = 0}), mp::UsageError);
    EXPECT_GE(mp::Parallel({.jobs = -1}).jobs(), 1);
    EXPECT_GE(mp::Parallel({.jobs = -100}).jobs(), 1);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ParallelTest,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
