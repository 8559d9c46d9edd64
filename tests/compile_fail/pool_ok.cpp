// Must compile: the control for the Pool compile-failure checks (same includes, shippable tasks).
#include <string>
#include <vector>

#include "multiproc/pool.hpp"

int square(int x) { return x * x; }

int main() {
    mp::Pool pool(1);
    auto r = pool.map(square, std::vector<int>{1, 2});
    auto a = pool.apply_async([](int x) { return x + 1; }, 3);
    return static_cast<int>(r.size()) + a.get();
}
