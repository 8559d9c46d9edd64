// Rows: what recording a timeline (mp::trace::start) costs a pool. Each row runs the same
// workload twice in the same run of bench/run.py: "multiproc" with a timeline recording (to a
// file in /tmp, written after the clock stops) and "untraced" without one, so multiproc /
// untraced is the ratio traced / untraced. Pool(2), fork, made before the clock starts.
//
//   trace_map_tiny   Pool.map(square, ints) in maps of 1,000,000 tiny tasks (default
//                    chunksize: the engine sends chunks of ~2 ms, one record per chunk)
//   trace_map_1ms    Pool.map over tasks of ~1 ms of CPU (one record per task)
//   trace_apply_rtt  one apply_async(square, x).get() round trip: the worst case, a record
//                    (and a function name looked up) for every tiny task
//
// The cost of tracing switched off is read from the pool_* rows (bench/rows/pool.cpp) of a
// build with and one without the hooks: docs/bench.md.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "harness.hpp"
#include "multiproc/context.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/trace.hpp"

namespace bench {
namespace {

constexpr std::size_t kMapSize = 1'000'000;

int square(int x) { return x * x; }

// About 1 ms of CPU, by the clock (the same in both implementations of a row).
std::uint64_t busy_1ms(std::uint64_t seed) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
    std::uint64_t x = seed;
    while (std::chrono::steady_clock::now() < until) x = x * 6364136223846793005ULL + 1;
    return x | 1;
}

mp::Pool make_pool() {
    mp::PoolOptions o;
    o.context = mp::get_context("fork");
    return mp::Pool(2, o);
}

// Records a timeline while alive (when `on`); the file is written and removed after the
// clock stopped.
class Recording {
public:
    explicit Recording(bool on) : on_(on) {
        if (on_) mp::trace::start(path_);
    }
    Recording(const Recording&) = delete;
    Recording& operator=(const Recording&) = delete;
    ~Recording() {
        if (!on_) return;
        mp::trace::stop();
        std::remove(path_.c_str());
    }

private:
    bool on_;
    std::string path_ =
        "/tmp/mp-bench-trace-" + std::to_string(mp::current_process().pid()) + ".json";
};

double map_tiny(const Run& run, bool traced) {
    mp::Pool pool = make_pool();
    std::vector<int> full(kMapSize), tail(run.iters % kMapSize);
    for (std::size_t i = 0; i < full.size(); ++i) full[i] = static_cast<int>(i & 1023);
    for (std::size_t i = 0; i < tail.size(); ++i) tail[i] = static_cast<int>(i & 1023);
    static_cast<void>(pool.map(square, std::vector<int>(full.begin(), full.begin() + 1000)));
    Recording rec(traced);
    long long sum = 0;
    Stopwatch clock;
    for (std::uint64_t m = 0; m < run.iters / kMapSize; ++m) sum += pool.map(square, full).back();
    if (!tail.empty()) sum += pool.map(square, tail).back();
    const double seconds = clock.seconds();
    if (sum < 0) fail("trace_map_tiny: wrong results");
    return seconds;
}

double map_1ms(const Run& run, bool traced) {
    mp::Pool pool = make_pool();
    static_cast<void>(pool.map(busy_1ms, std::vector<std::uint64_t>(run.warmup + 2, 7)));
    const std::vector<std::uint64_t> in(run.iters, 7);
    Recording rec(traced);
    Stopwatch clock;
    const std::vector<std::uint64_t> out = pool.map(busy_1ms, in);
    const double seconds = clock.seconds();
    if (out.size() != in.size()) fail("trace_map_1ms: wrong results");
    return seconds;
}

double apply_rtt(const Run& run, bool traced) {
    mp::Pool pool = make_pool();
    for (std::uint64_t i = 0; i < run.warmup; ++i) static_cast<void>(pool.apply(square, 3));
    Recording rec(traced);
    long long sum = 0;
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i)
        sum += pool.apply_async(square, static_cast<int>(i & 1023)).get();
    const double seconds = clock.seconds();
    if (sum < 0) fail("trace_apply_rtt: wrong results");
    return seconds;
}

BENCH_REGISTER(add_row({.name = "trace_map_tiny",
                        .what = "Pool(2).map(square, ints), maps of 1,000,000: timeline recording "
                                "(multiproc) vs not (untraced)",
                        .kind = Kind::throughput,
                        .unit = "tasks/s",
                        .probe_iters = 1'000'000,
                        .goal = {"untraced", Goal::at_least, 0.5}}));
BENCH_REGISTER(add_impl("trace_map_tiny", "multiproc",
                        [](const Run& r) { return map_tiny(r, true); }));
BENCH_REGISTER(add_impl("trace_map_tiny", "untraced",
                        [](const Run& r) { return map_tiny(r, false); }));

BENCH_REGISTER(add_row({.name = "trace_map_1ms",
                        .what = "Pool(2).map over ~1 ms tasks: timeline recording (multiproc) vs "
                                "not (untraced)",
                        .kind = Kind::throughput,
                        .unit = "tasks/s",
                        .probe_iters = 200,
                        .goal = {"untraced", Goal::at_least, 0.9}}));
BENCH_REGISTER(add_impl("trace_map_1ms", "multiproc",
                        [](const Run& r) { return map_1ms(r, true); }));
BENCH_REGISTER(add_impl("trace_map_1ms", "untraced",
                        [](const Run& r) { return map_1ms(r, false); }));

BENCH_REGISTER(add_row({.name = "trace_apply_rtt",
                        .what = "one Pool(2).apply_async(square, x).get(): timeline recording "
                                "(multiproc) vs not (untraced)",
                        .kind = Kind::latency,
                        .unit = "us",
                        .scale = 1e6,
                        .probe_iters = 2000,
                        .goal = {"untraced", Goal::at_most, 2.0}}));
BENCH_REGISTER(add_impl("trace_apply_rtt", "multiproc",
                        [](const Run& r) { return apply_rtt(r, true); }));
BENCH_REGISTER(add_impl("trace_apply_rtt", "untraced",
                        [](const Run& r) { return apply_rtt(r, false); }));

}  // namespace
}  // namespace bench
