// Seeing and bounding what a pool does: lifecycle logging, a progress bar, a task that overruns
// its time limit (its worker is killed and replaced, the others finish), and the pool's
// statistics afterwards.
// Usage: pool_insight [fork|spawn|forkserver]
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "multiproc/bootstrap.hpp"
#include "multiproc/context.hpp"
#include "multiproc/engine_stats.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/logging.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/progress.hpp"

int square(int x) { return x * x; }

int stuck(int) {
    std::this_thread::sleep_for(std::chrono::hours(1));  // never returns in time
    return 0;
}

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc > 1) mp::set_start_method(argv[1]);
    mp::log_to_stderr(mp::LogLevel::info);  // pool and worker lifecycle on stderr

    mp::Pool pool(2);
    std::vector<int> xs(20000);
    for (int i = 0; i < 20000; ++i) xs[static_cast<std::size_t>(i)] = i % 100;
    const auto squares = pool.map(square, xs, mp::progress_bar());
    long long sum = 0;
    for (int v : squares) sum += v;
    std::printf("sum of squares: %lld\n", sum);  // 200 * (0^2 + ... + 99^2) = 65670000

    // A per-call time limit: the overdue task fails alone, its worker is replaced.
    auto late = pool.apply_async(mp::task_timeout(std::chrono::milliseconds(200)), stuck, 0);
    auto fine = pool.apply_async(square, 12);
    bool timed_out = false;
    try {
        late.get();
    } catch (const mp::TimeoutError& e) {
        timed_out = true;
        std::printf("timed out: %s\n", e.what());
    }
    std::printf("the other task: %d\n", fine.get());

    const mp::PoolStats s = pool.stats();
    for (const mp::WorkerStats& w : s.workers)
        std::printf("worker %zu (pid %d): %zu tasks, %zu items, busy %.1f ms, %zu restarts\n",
                    w.index, static_cast<int>(w.pid), w.tasks_done, w.items_done,
                    std::chrono::duration<double, std::milli>(w.busy).count(), w.restarts);
    std::printf("restarts for a timeout: %zu\n", s.restarts_for(mp::RestartReason::timeout));
    return sum == 65670000 && timed_out && fine.get() == 144 &&
                   s.restarts_for(mp::RestartReason::timeout) == 1
               ? 0
               : 1;
}
