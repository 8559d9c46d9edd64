// A program of a user's own on multiproc::mpi, built against the installed package with
// find_package(multiproc COMPONENTS mpi); run as `mpirun -n 3 consumer_mpi`.
#include <multiproc/mpi.hpp>
#include <multiproc/multiproc.hpp>

#include <cstdio>
#include <vector>

namespace {
int square(int x) { return x * x; }
}  // namespace

int main(int argc, char** argv) {
    mp::init(argc, argv);  // ranks 1 and 2 serve tasks in here
    mp::PoolOptions o;
    o.context = mp::get_context("mpi");
    mp::Pool pool(std::nullopt, o);
    const std::vector<int> r = pool.map(square, std::vector<int>{1, 2, 3, 4});
    const bool ok = r == std::vector<int>{1, 4, 9, 16} && mp::mpi::size() == 3;
    std::printf("consumer_mpi: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
