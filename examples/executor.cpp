// concurrent.futures in C++: submit, as_completed, wait, map, callbacks, and a crash that does
// not break the executor.
// Usage: executor [fork|spawn|forkserver]
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "multiproc/bootstrap.hpp"
#include "multiproc/context.hpp"
#include "multiproc/futures.hpp"

int square(int x) { return x * x; }
int crash(int) {
    ::raise(SIGKILL);  // the worker dies; only this task fails
    return 0;
}

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc > 1) mp::set_start_method(argv[1]);

    mp::ProcessPoolExecutor ex(2);
    std::vector<mp::Future<int>> fs;
    for (int i = 1; i <= 5; ++i) fs.push_back(ex.submit(square, i));
    fs[0].add_done_callback([](mp::Future<int>& f) { std::printf("callback: %d\n", f.result()); });

    int sum = 0;
    for (mp::Future<int>& f : mp::as_completed(fs)) sum += f.result();
    std::printf("sum of squares 1..5 = %d\n", sum);  // 55

    auto bad = ex.submit(crash, 0);
    auto good = ex.submit(square, 12);
    auto r = mp::wait(std::vector<mp::Future<int>>{bad, good});  // ALL_COMPLETED
    std::printf("done: %zu, not done: %zu\n", r.done.size(), r.not_done.size());
    try {
        bad.result();
    } catch (const mp::BrokenProcessPool& e) {
        std::printf("the crashed task: %s\n", e.what());
    }
    std::printf("the executor still works: %d\n", good.result());

    int total = 0;
    for (int y : ex.map(square, std::vector<int>{1, 2, 3})) total += y;
    std::printf("map: %d\n", total);  // 14
    return sum == 55 && good.result() == 144 && total == 14 ? 0 : 1;
}
