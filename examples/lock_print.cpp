// The seed's lock example (Python's docs, "Synchronization between processes"):
//
//     def f(l, i):
//         l.acquire()
//         try:
//             print('hello world', i)
//         finally:
//             l.release()
//
//     lock = Lock()
//     for num in range(10):
//         Process(target=f, args=(lock, num)).start()
//
// Without the lock, the output of the processes could get all mixed up.
// Usage: lock_print [fork|spawn|forkserver]   (default fork)
#include <cstdio>
#include <mutex>
#include <vector>

#include <multiproc/bootstrap.hpp>
#include <multiproc/context.hpp>
#include <multiproc/process.hpp>
#include <multiproc/synchronize.hpp>

void f(mp::Lock l, int i) {
    std::scoped_lock lk(l);  // acquire; released on every way out, as try/finally
    std::printf("hello world %d\n", i);
    std::fflush(stdout);
}

int main(int argc, char** argv) {
    mp::init(argc, argv);
    mp::set_start_method(argc > 1 ? argv[1] : "fork");
    mp::Lock lock;
    std::vector<mp::Process> ps;
    for (int num = 0; num < 10; ++num) {
        ps.emplace_back(f, lock, num);
        ps.back().start();
    }
    int failed = 0;
    for (auto& p : ps) {
        p.join();  // a started Process is joined (Python joins its children at exit too)
        failed += *p.exitcode() != 0;
    }
    return failed ? 1 : 0;
}
