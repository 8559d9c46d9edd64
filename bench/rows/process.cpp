// Row: process start+join with the fork start method, no-op target.
//
//   raw        fork(); the child _exit(0)s at once; the parent waitpid()s.
//   multiproc  mp::Process p(mp::get_context("fork"), noop); p.start(); p.join();
//   python     multiprocessing.get_context("fork").Process(target=noop): start(), join()
#include "harness.hpp"
#include "multiproc/context.hpp"
#include "multiproc/process.hpp"
#include "raw.hpp"

namespace bench {
namespace {

BENCH_REGISTER(add_row({
    .name = "process_fork_start_join",
    .what = "start and join one child process (fork start method) whose target does nothing",
    .kind = Kind::latency,
    .unit = "ms",
    .scale = 1e3,
    .probe_iters = 50,
    .goal = {"raw", Goal::at_most, 1.2},
}));

double raw_fork_join(const Run& run) {
    auto once = [] {
        pid_t pid = ::fork();
        if (pid == -1) fail_errno("fork");
        if (pid == 0) ::_exit(0);
        raw::wait_child(pid);
    };
    for (std::uint64_t i = 0; i < run.warmup; ++i) once();
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) once();
    return clock.seconds();
}

BENCH_REGISTER(add_impl("process_fork_start_join", "raw", raw_fork_join));

void noop() {}

double mp_fork_join(const Run& run) {
    const mp::Context fork = mp::get_context("fork");
    auto once = [&] {
        mp::Process p(fork, noop);
        p.start();
        p.join();
        if (p.exitcode() != 0) fail("multiproc child failed");
    };
    for (std::uint64_t i = 0; i < run.warmup; ++i) once();
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) once();
    return clock.seconds();
}

BENCH_REGISTER(add_impl("process_fork_start_join", "multiproc", mp_fork_join));

}  // namespace
}  // namespace bench
