// The seed's Pool examples: Pool(4).map(square, ...) and apply_async(...).get().
// Usage: pool_map [fork|spawn|forkserver]
#include <cstdio>
#include <string>
#include <vector>

#include "multiproc/bootstrap.hpp"
#include "multiproc/context.hpp"
#include "multiproc/pool.hpp"

int square(int x) { return x * x; }

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc > 1) mp::set_start_method(argv[1]);

    mp::Pool pool(4);
    std::vector<int> r = pool.map(square, std::vector<int>{1, 2, 3, 4});  // {1, 4, 9, 16}
    for (int x : r) std::printf("%d ", x);
    std::printf("\n");

    auto a = pool.apply_async(square, 10);
    int hundred = a.get();  // an exception thrown in the worker is rethrown here
    std::printf("%d\n", hundred);

    long long sum = 0;
    for (int y : pool.imap(square, std::vector<int>{5, 6, 7})) sum += y;
    std::printf("%lld\n", sum);  // 25 + 36 + 49 = 110
    return r == std::vector<int>{1, 4, 9, 16} && hundred == 100 && sum == 110 ? 0 : 1;
}
