// The MPI rows of docs/bench.md: multiproc::mpi against the local Pool, each run one process
// (bench/mpi_rows.py runs them all and prints the table):
//   mpirun -n 3 ./mpi_tiny mpi N KIND [ARG]   on the "mpi" context (ranks 1 and 2 run tasks)
//   ./mpi_tiny local N KIND [ARG]             the same on a local Pool of 2 workers
// KIND:
//   map    one Pool::map(inc, N ints) (the engine batches them)
//   async  N apply_async(inc, x), then every get (one task each)
//   spin   one Pool::map over N tasks of ARG loop turns each (calibrate gives ~1 ms)
//   first  startup: a one-task map, once; prints the wall-clock time (seconds since the epoch)
//          at which its result arrived, for the caller that noted when it started mpirun
//   calibrate   prints the loop turns of ~1 ms of CPU on this machine (N unused)
// map, async and spin print "<mode> <kind> <tasks> <seconds> <tasks/s>": the median of the timed
// rounds after a warm-up round (at least 5, more until 0.5 s have passed: a round of tiny tasks
// may take a few milliseconds, which one disturbance of the shared machine doubles).
#include <multiproc/multiproc.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "spin.hpp"

namespace {

int inc(int x) { return x + 1; }

using mp_bench::spin;

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The loop turns of ~1 ms: the fastest of several trials (the least disturbed).
std::uint64_t calibrate() {
    auto fastest = [](std::uint64_t n) {
        double best = 1e9;
        for (int t = 0; t < 20; ++t) {
            const auto t0 = std::chrono::steady_clock::now();
            static_cast<void>(spin(n));
            best = std::min(best, seconds_since(t0));
        }
        return best;
    };
    std::uint64_t n = 200'000;
    for (int i = 0; i < 2; ++i)
        n = static_cast<std::uint64_t>(static_cast<double>(n) * 1e-3 / fastest(n));
    return std::max<std::uint64_t>(n, 1);
}

// One timed round of `kind`; false when a result is wrong.
bool round(mp::Pool& pool, const std::string& kind, const std::vector<int>& items,
           std::uint64_t turns) {
    const int n = static_cast<int>(items.size());
    if (kind == "map") return pool.map(inc, items).back() == n;
    if (kind == "spin") {
        const std::uint64_t expect = spin(turns);
        const auto out = pool.map(spin, std::vector<std::uint64_t>(items.size(), turns));
        return std::all_of(out.begin(), out.end(), [&](std::uint64_t r) { return r == expect; });
    }
    std::vector<mp::AsyncResult<int>> rs;
    rs.reserve(items.size());
    for (int x : items) rs.push_back(pool.apply_async(inc, x));
    long sum = 0;
    for (auto& r : rs) sum += r.get();
    return sum == static_cast<long>(n) * (n + 1) / 2;
}

}  // namespace

int main(int argc, char** argv) {
    mp::init(argc, argv);
    const std::string mode = argc > 1 ? argv[1] : "local";
    const int n = argc > 2 ? std::atoi(argv[2]) : 100000;
    const std::string kind = argc > 3 ? argv[3] : "map";
    const std::uint64_t turns = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 0;
    if (kind == "calibrate") {
        std::printf("%llu\n", static_cast<unsigned long long>(calibrate()));
        return 0;
    }
    mp::PoolOptions o;
    if (mode == "mpi") o.context = mp::get_context("mpi");
    mp::Pool pool(2, o);
    if (kind == "first") {
        if (pool.map(inc, std::vector<int>{41}).at(0) != 42) return 1;
        const auto now = std::chrono::system_clock::now().time_since_epoch();
        std::printf("%.6f\n", std::chrono::duration<double>(now).count());
        return 0;
    }
    std::vector<int> items(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) items[static_cast<std::size_t>(i)] = i;
    if (!round(pool, kind, items, turns)) return 1;  // warm-up: chunk sizes learnt
    std::vector<double> times;
    const auto start = std::chrono::steady_clock::now();
    while (times.size() < 5 || (seconds_since(start) < 0.5 && times.size() < 500)) {
        const auto t0 = std::chrono::steady_clock::now();
        if (!round(pool, kind, items, turns)) return 1;
        times.push_back(seconds_since(t0));
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    std::printf("%s %s %d %.4f %.0f\n", mode.c_str(), kind.c_str(), n, median, n / median);
    return 0;
}
