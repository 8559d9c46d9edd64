// Tiny-task throughput over MPI ranks against the local Pool (docs/bench.md, "MPI rows"):
//   mpirun -n 3 ./mpi_tiny mpi N     Pool::map of N tiny tasks on the "mpi" context (2 ranks)
//   ./mpi_tiny local N               the same on a local Pool of 2 workers
// Prints one line: "<mode> <tasks> <seconds> <tasks/s>", the best of 5 timed maps after a
// warm-up map (the machine is shared: the best is the least disturbed).
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
    mp::PoolOptions o;
    if (mode == "mpi") o.context = mp::get_context("mpi");
    mp::Pool pool(2, o);
    std::vector<int> items(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) items[static_cast<std::size_t>(i)] = i;
    static_cast<void>(pool.map(inc, items));  // warm-up: workers started, chunk size learnt
    double best = 1e30;
    for (int round = 0; round < 5; ++round) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto r = pool.map(inc, items);
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (r.back() != n) return 1;
        best = std::min(best, s);
    }
    std::printf("%s %d %.4f %.0f\n", mode.c_str(), n, best, n / best);
    return 0;
}
