// The demo: count the primes below N (default 10^8) with a segmented sieve, three ways: in one
// process; split across process_cpu_count() Processes that each report their count through a
// Pipe; and as 64 segments through mp::parallel_map with a progress bar (the task engine that
// also runs Pool and ProcessPoolExecutor). Prints the speedups against one process.
//
//   ./primes_demo [N] [start-method]
#include <multiproc/multiproc.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

// Primes in [lo, hi), by sieving the segment with the base primes up to sqrt(hi).
std::uint64_t count_primes(std::uint64_t lo, std::uint64_t hi) {
    if (hi <= 2) return 0;
    if (lo < 2) lo = 2;
    const auto root = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(hi))) + 1;
    std::vector<bool> small(root + 1, true);
    std::vector<std::uint64_t> base;
    for (std::uint64_t i = 2; i <= root; ++i) {
        if (!small[i]) continue;
        base.push_back(i);
        for (std::uint64_t j = i * i; j <= root; j += i) small[j] = false;
    }
    constexpr std::uint64_t kSegment = 1 << 18;
    std::vector<bool> seg;
    std::uint64_t count = 0;
    for (std::uint64_t s = lo; s < hi; s += kSegment) {
        const std::uint64_t e = std::min(s + kSegment, hi);
        seg.assign(e - s, true);
        for (std::uint64_t p : base) {
            if (p * p >= e) break;
            std::uint64_t first = std::max(p * p, (s + p - 1) / p * p);
            for (std::uint64_t j = first; j < e; j += p) seg[j - s] = false;
        }
        for (std::uint64_t i = 0; i < e - s; ++i) count += seg[i];
    }
    return count;
}

// A child's work: count its range and send the answer back through its end of the pipe.
void worker(mp::Connection out, std::uint64_t lo, std::uint64_t hi) {
    out.send(count_primes(lo, hi));
}

// One parallel_map task: a segment [lo, hi).
std::uint64_t count_segment(std::array<std::uint64_t, 2> range) {
    return count_primes(range[0], range[1]);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    mp::init(argc, argv);
    const std::uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100'000'000ULL;
    if (argc > 2) mp::set_start_method(argv[2]);
    const unsigned procs =
        static_cast<unsigned>(std::max(1, static_cast<int>(mp::process_cpu_count())));

    auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t serial = count_primes(0, n);
    const double t_serial = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    std::vector<mp::Process> workers;
    std::vector<mp::Connection> results;
    for (unsigned i = 0; i < procs; ++i) {
        auto [reader, writer] = mp::Pipe(/*duplex=*/false);
        workers.emplace_back(worker, writer, n * i / procs, n * (i + 1) / procs);
        workers.back().start();
        writer.close();  // the child holds its own copy; ours would hide the child's death
        results.push_back(reader);
    }
    std::uint64_t parallel = 0;
    for (auto& r : results) parallel += r.recv<std::uint64_t>();
    for (auto& w : workers) w.join();
    const double t_parallel = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    constexpr std::uint64_t kTasks = 64;
    std::vector<std::array<std::uint64_t, 2>> segments;
    for (std::uint64_t i = 0; i < kTasks; ++i)
        segments.push_back({n * i / kTasks, n * (i + 1) / kTasks});
    std::uint64_t mapped = 0;
    for (std::uint64_t c :
         mp::parallel_map(count_segment, segments, {.jobs = -1, .progress = true}))
        mapped += c;
    const double t_mapped = seconds_since(t0);

    std::printf("primes below %llu: %llu (1 process, %.3f s)\n", static_cast<unsigned long long>(n),
                static_cast<unsigned long long>(serial), t_serial);
    std::printf("primes below %llu: %llu (%u processes, start method %s, %.3f s)\n",
                static_cast<unsigned long long>(n), static_cast<unsigned long long>(parallel),
                procs, mp::get_start_method().value_or("?").c_str(), t_parallel);
    std::printf("primes below %llu: %llu (parallel_map, %llu tasks, %.3f s)\n",
                static_cast<unsigned long long>(n), static_cast<unsigned long long>(mapped),
                static_cast<unsigned long long>(kTasks), t_mapped);
    std::printf("speedup on %u cores: %.2fx with Processes and Pipes, %.2fx with parallel_map\n",
                procs, t_serial / t_parallel, t_serial / t_mapped);
    return serial == parallel && serial == mapped ? 0 : 1;
}
