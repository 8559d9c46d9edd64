// Must compile: the control for the futures/parallel compile-failure checks.
#include <vector>

#include "multiproc/futures.hpp"
#include "multiproc/parallel.hpp"

int square(int x) { return x * x; }

int main() {
    mp::ProcessPoolExecutor ex(1);
    auto f = ex.submit(square, 4);
    auto r = mp::parallel_map(square, std::vector<int>{1, 2});
    auto done = mp::wait(std::vector<mp::Future<int>>{f}, mp::forever, mp::FIRST_COMPLETED);
    return f.result() + r[0] + static_cast<int>(done.done.size());
}
