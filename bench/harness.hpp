// The benchmark harness: rows, implementations and the timing protocol shared by every row.
//
// A row is one workload (for example "pipe_rtt_8B": an 8-byte round trip between two
// processes). It is measured by several implementations of the same workload: "multiproc"
// (this library), "raw" (the same thing written plainly with system calls) and, outside this
// binary, "python" (bench/py_bench.py, Python's multiprocessing). bench/run.py runs them all,
// interleaved, and prints medians and ratios.
//
// Adding a row (see docs/bench.md):
//
//   BENCH_REGISTER(bench::add_row({.name = "queue_put_get_8B", .what = "...",
//                                  .kind = bench::Kind::latency, .unit = "us", .scale = 1e6,
//                                  .goal = {"raw", bench::Goal::at_most, 1.2}}));
//   BENCH_REGISTER(bench::add_impl("queue_put_get_8B", "multiproc", my_workload));
//
// A workload is a plain function `double f(const bench::Run& run)`: it sets up (forks its
// children, makes its pipes), runs run.warmup untimed iterations, then times exactly
// run.iters iterations and returns the elapsed seconds of that timed part only; it tears down
// afterwards (joins its children) and throws on any failure. Setup and teardown are never
// timed, so process creation does not pollute a latency row (unless it is the workload).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace bench {

/// How a row's seconds become its headline number.
enum class Kind {
    latency,     ///< value = seconds / iters * scale (lower is better), e.g. us per round trip
    throughput,  ///< value = iters / seconds in messages/s, plus MB/s (higher is better)
};

/// A row's goal: multiproc's value divided by `versus`'s value, bounded by `bound`.
struct Goal {
    enum Direction { none, at_most, at_least };
    std::string versus;  ///< the implementation compared against, e.g. "raw"
    Direction direction = none;
    double bound = 0;  ///< e.g. 1.15 (at_most: multiproc/raw <= 1.15) or 0.70 (at_least)
};

/// What a row measures and how to read its numbers.
struct RowSpec {
    std::string name;  ///< stable identifier, shared with py_bench.py
    std::string what;  ///< one line for the table and the docs
    Kind kind = Kind::latency;
    std::string unit;                  ///< latency: "us" or "ms"; throughput: "msg/s"
    double scale = 1e6;                ///< latency only: seconds-per-iteration multiplier
    std::uint64_t bytes_per_iter = 0;  ///< throughput only: payload bytes per message, for MB/s
    std::uint64_t probe_iters = 1000;  ///< where calibration starts (a cheap first guess)
    Goal goal;
};

/// The parameters of one measured run.
struct Run {
    std::uint64_t iters = 0;   ///< timed iterations
    std::uint64_t warmup = 0;  ///< untimed iterations first (caches, page faults, scheduler)
};

/// A workload: returns the seconds spent in exactly run.iters timed iterations.
using Workload = double (*)(const Run& run);

/// Registers a row; returns true so it can initialise a static (see BENCH_REGISTER).
bool add_row(RowSpec spec);
/// Registers one implementation of a row (the row may be registered in another file).
bool add_impl(std::string row, std::string impl, Workload workload);

/// Registered rows, in registration order, each with its implementations' names.
struct RowEntry {
    RowSpec spec;
    std::vector<std::pair<std::string, Workload>> impls;
};
/// The registry (rows without a spec are reported as errors by main).
std::vector<RowEntry>& registry();

/// steady_clock stopwatch: seconds since construction.
class Stopwatch {
public:
    Stopwatch() : start_(std::chrono::steady_clock::now()) {}
    /// Seconds elapsed since construction.
    [[nodiscard]] double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }

private:
    std::chrono::steady_clock::time_point start_;
};

/// Throws std::runtime_error("what: strerror(errno)").
[[noreturn]] void fail_errno(const char* what);
/// Throws std::runtime_error(message).
[[noreturn]] void fail(const std::string& message);

}  // namespace bench

#define BENCH_CAT_(a, b) a##b
#define BENCH_CAT(a, b) BENCH_CAT_(a, b)
/// Runs a registration call during static initialisation of the benchmark binary.
#define BENCH_REGISTER(...) \
    [[maybe_unused]] static const bool BENCH_CAT(bench_registered_, __COUNTER__) = (__VA_ARGS__)
