// The seed's shared-memory example (Python's docs, "Sharing state between processes"):
//
//     def f(n, a):
//         n.value = 3.1415927
//         for i in range(len(a)):
//             a[i] = -a[i]
//
//     num = Value('d', 0.0)
//     arr = Array('i', range(10))
//     p = Process(target=f, args=(num, arr)); p.start(); p.join()
//     print(num.value); print(arr[:])
//
// then a counter that 4 processes increment 10,000 times each under the Value's lock.
// Usage: shared_counter [fork|spawn|forkserver]   (default fork)
#include <cstdio>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include <multiproc/bootstrap.hpp>
#include <multiproc/context.hpp>
#include <multiproc/process.hpp>
#include <multiproc/sharedctypes.hpp>

void f(mp::Value<double> n, mp::Array<int> a) {
    n.value() = 3.1415927;
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = -a[i];
}

void count(mp::Value<long> counter, int times) {
    for (int i = 0; i < times; ++i) {
        std::scoped_lock lk(counter.get_lock());  // Python: with counter.get_lock():
        counter.value() += 1;                     //             counter.value += 1
    }
}

int main(int argc, char** argv) {
    mp::init(argc, argv);
    mp::set_start_method(argc > 1 ? argv[1] : "fork");

    mp::Value<double> num(0.0);
    std::vector<int> ten(10);
    std::iota(ten.begin(), ten.end(), 0);
    mp::Array<int> arr(ten);  // Array('i', range(10))
    mp::Process p(f, num, arr);
    p.start();
    p.join();
    std::printf("%.7f\n", num.value());
    std::printf("[");
    for (std::size_t i = 0; i < arr.size(); ++i) std::printf(i ? ", %d" : "%d", arr[i]);
    std::printf("]\n");

    mp::Value<long> counter(0);
    std::vector<mp::Process> workers;
    for (int i = 0; i < 4; ++i) workers.emplace_back(count, counter, 10'000);
    for (auto& w : workers) w.start();
    for (auto& w : workers) w.join();
    std::printf("counter = %ld (4 processes x 10000 increments under its lock)\n", counter.value());
    return counter.value() == 40'000 && arr[9] == -9 ? 0 : 1;
}
