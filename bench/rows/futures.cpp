// Rows: ProcessPoolExecutor.submit throughput and parallel_map throughput, against Python's
// concurrent.futures and joblib (bench/py_bench.py).
//
//   executor_submit   an executor with 2 workers (fork) is made before the clock starts and
//                     warmed with `warmup` tasks; timed: submit `iters` tiny tasks (int square)
//                     one by one, then read every result. Python: ProcessPoolExecutor(2,
//                     mp_context=fork), the same protocol.
//   parallel_map      one mp::parallel_map(square, v, {.jobs = 2}) over `iters` ints, starting
//                     and stopping its 2 workers inside the timed call (the free function's
//                     whole cost); the warm-up is one untimed call. Python: joblib's
//                     Parallel(n_jobs=2)(delayed(square)(i) for i in range(iters)), default
//                     (loky) backend and auto batching; its workers outlive the call, so after
//                     the warm-up call they are already running.
#include <cstdint>
#include <numeric>
#include <vector>

#include "harness.hpp"
#include "multiproc/context.hpp"
#include "multiproc/futures.hpp"
#include "multiproc/parallel.hpp"

namespace bench {
namespace {

int square(int x) { return x * x; }

BENCH_REGISTER(
    add_row({.name = "executor_submit",
             .what = "ProcessPoolExecutor(2).submit of a tiny task (int square), then every result",
             .kind = Kind::throughput,
             .unit = "msg/s",
             .probe_iters = 20000,
             .goal = {"python", Goal::at_least, 50.0}}));
BENCH_REGISTER(add_row(
    {.name = "parallel_map",
     .what = "parallel_map(square, ints) with 2 workers (joblib Parallel(n_jobs=2) in Python)",
     .kind = Kind::throughput,
     .unit = "msg/s",
     .probe_iters = 200000,
     .goal = {"python", Goal::at_least, 20.0}}));

double mp_submit(const Run& run) {
    mp::ExecutorOptions o;
    o.context = mp::get_context("fork");
    mp::ProcessPoolExecutor ex(2, o);
    std::vector<mp::Future<int>> fs;
    fs.reserve(run.warmup);
    for (std::uint64_t i = 0; i < run.warmup; ++i)
        fs.push_back(ex.submit(square, static_cast<int>(i & 1023)));
    for (auto& f : fs) static_cast<void>(f.result());
    fs.clear();
    fs.reserve(run.iters);
    long long sum = 0;
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i)
        fs.push_back(ex.submit(square, static_cast<int>(i & 1023)));
    for (auto& f : fs) sum += f.result();
    const double seconds = clock.seconds();
    if (sum < 0) fail("executor_submit: wrong results");
    return seconds;
}

double mp_parallel_map(const Run& run) {
    std::vector<int> in(run.iters);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i & 1023);
    mp::ParallelOptions o;
    o.jobs = 2;
    o.context = mp::get_context("fork");
    std::vector<int> warm(run.warmup, 3);
    static_cast<void>(mp::parallel_map(square, warm, o));
    Stopwatch clock;
    auto r = mp::parallel_map(square, in, o);
    const double seconds = clock.seconds();
    if (r.size() != in.size() || (!r.empty() && r.back() != in.back() * in.back()))
        fail("parallel_map: wrong results");
    return seconds;
}

BENCH_REGISTER(add_impl("executor_submit", "multiproc", mp_submit));
BENCH_REGISTER(add_impl("parallel_map", "multiproc", mp_parallel_map));

}  // namespace
}  // namespace bench
