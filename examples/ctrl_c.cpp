// Ctrl-C as Python has it (docs/signals.md): under an mp::SigintGuard, pressing Ctrl-C during a
// long map throws mp::KeyboardInterrupt; the pool stays usable and its destructor terminates it.
// Other signals (the SIGALRM timer below, 100 times a second) never disturb a call.
// Usage: ctrl_c [fork|spawn|forkserver]   (press Ctrl-C within 5 s, or let it finish)
#include <signal.h>
#include <sys/time.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "multiproc/bootstrap.hpp"
#include "multiproc/context.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/signals.hpp"

int slow_square(int x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return x * x;
}

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc > 1) mp::set_start_method(argv[1]);

    // A profiler-like timer: its handler returns, so multiproc's calls just go on (PEP 475).
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGALRM, &sa, nullptr);
    itimerval every_10ms{{0, 10'000}, {0, 10'000}};
    ::setitimer(ITIMER_REAL, &every_10ms, nullptr);

    mp::SigintGuard ctrl_c;
    mp::Pool pool(4);
    try {
        std::vector<int> r = pool.map(slow_square, std::vector<int>(200, 3), 1);  // about 5 s
        std::printf("map finished: %zu results\n", r.size());
    } catch (const mp::KeyboardInterrupt&) {
        std::printf("map interrupted by Ctrl-C\n");
    }
    std::printf("the pool still works: %d\n", pool.apply(slow_square, 7));  // 49
    return 0;
}
