// Tiny-task throughput over MPI ranks against the local Pool (docs/bench.md, "MPI rows"):
//   mpirun -n 3 ./mpi_tiny mpi N [map|async]   N tiny tasks on the "mpi" context (2 ranks)
//   ./mpi_tiny local N [map|async]             the same on a local Pool of 2 workers
// map: one Pool::map over N items (the engine batches them); async: N apply_async calls, then
// every get (one task each). Prints "<mode> <kind> <tasks> <seconds> <tasks/s>", the best of 5
// timed rounds after a warm-up round (the machine is shared: the best is the least disturbed).
#include <multiproc/multiproc.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {
int inc(int x) { return x + 1; }
}  // namespace

int main(int argc, char** argv) {
    mp::init(argc, argv);
    const std::string mode = argc > 1 ? argv[1] : "local";
    const int n = argc > 2 ? std::atoi(argv[2]) : 100000;
    const std::string kind = argc > 3 ? argv[3] : "map";
    mp::PoolOptions o;
    if (mode == "mpi") o.context = mp::get_context("mpi");
    mp::Pool pool(2, o);
    std::vector<int> items(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) items[static_cast<std::size_t>(i)] = i;
    // One round; false when a result is wrong.
    auto round = [&] {
        if (kind == "map") return pool.map(inc, items).back() == n;
        std::vector<mp::AsyncResult<int>> rs;
        rs.reserve(items.size());
        for (int x : items) rs.push_back(pool.apply_async(inc, x));
        long sum = 0;
        for (auto& r : rs) sum += r.get();
        return sum == static_cast<long>(n) * (n + 1) / 2;
    };
    if (!round()) return 1;  // warm-up: workers started, chunk sizes learnt
    double best = 1e30;
    for (int i = 0; i < 5; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        if (!round()) return 1;
        const auto t1 = std::chrono::steady_clock::now();
        best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    }
    std::printf("%s %s %d %.4f %.0f\n", mode.c_str(), kind.c_str(), n, best, n / best);
    return 0;
}
