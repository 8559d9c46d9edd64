// Rows: process start+join under each start method, no-op target, against the kernel's own cost
// of the same thing and against Python's same start method.
//
//   process_fork_start_join
//     multiproc  mp::Process p(mp::get_context("fork"), noop); p.start(); p.join();
//     raw        fork(); the child _exit(0)s at once; the parent waitpid()s.
//     python     multiprocessing.get_context("fork").Process(target=noop): start(), join()
//   process_spawn_start_join
//     multiproc  the same with mp::get_context("spawn"): posix_spawn of /proc/self/exe, which
//                enters mp::init, reads its bootstrap, runs noop and exits.
//     raw        posix_spawn of the same binary (/proc/self/exe) with an argument that makes it
//                exit at once (kNoopChildFlag below), then waitpid: what any exec costs.
//     python     multiprocessing.get_context("spawn").Process(target=noop)
//   process_forkserver_start_join
//     multiproc  the same with mp::get_context("forkserver") (the server is started by the
//                warm-up iterations, as Python's is started by its first Process).
//     raw        one socket round trip to a small server process that forks a child, which
//                _exit(0)s, waitpid()s it and answers with the status: the work of any
//                forkserver. raw_fork (fork + _exit + waitpid in this process) for reference.
//     python     multiprocessing.get_context("forkserver").Process(target=noop)
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "harness.hpp"
#include "multiproc/context.hpp"
#include "multiproc/process.hpp"
#include "raw.hpp"

extern char** environ;

namespace bench {
namespace {

// argv[1] of the raw spawn baseline's child: the benchmark binary exits at once. Seen by a
// constructor before main (glibc passes argc/argv to .init_array functions), so the child
// costs what loading this program costs, and nothing else.
constexpr const char* kNoopChildFlag = "--bench-noop-child";

__attribute__((constructor)) void exit_if_noop_child(int argc, char** argv, char**) {
    if (argc >= 2 && argv && argv[1] && std::strcmp(argv[1], kNoopChildFlag) == 0) ::_exit(0);
}

void noop() {}

// Times start+join of a no-op Process under one start method.
template <std::size_t N>
double mp_start_join(const Run& run, const char (&method)[N]) {
    const mp::Context ctx = mp::get_context(method);
    auto once = [&] {
        mp::Process p(ctx, noop);
        p.start();
        p.join();
        if (p.exitcode() != 0) fail(std::string("multiproc child failed under ") + method);
    };
    for (std::uint64_t i = 0; i < run.warmup; ++i) once();
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) once();
    return clock.seconds();
}

template <class F>
double timed(const Run& run, F&& once) {
    for (std::uint64_t i = 0; i < run.warmup; ++i) once();
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) once();
    return clock.seconds();
}

void raw_fork_once() {
    pid_t pid = ::fork();
    if (pid == -1) fail_errno("fork");
    if (pid == 0) ::_exit(0);
    raw::wait_child(pid);
}

// ---- fork ----

BENCH_REGISTER(add_row({
    .name = "process_fork_start_join",
    .what = "start and join one child process (fork start method) whose target does nothing",
    .kind = Kind::latency,
    .unit = "ms",
    .scale = 1e3,
    .probe_iters = 50,
    .goal = {"raw", Goal::at_most, 1.2},
}));

double raw_fork_join(const Run& run) { return timed(run, raw_fork_once); }
double mp_fork_join(const Run& run) { return mp_start_join(run, "fork"); }

BENCH_REGISTER(add_impl("process_fork_start_join", "raw", raw_fork_join));
BENCH_REGISTER(add_impl("process_fork_start_join", "multiproc", mp_fork_join));

// ---- spawn ----

BENCH_REGISTER(add_row({
    .name = "process_spawn_start_join",
    .what = "start and join one child process (spawn start method) whose target does nothing",
    .kind = Kind::latency,
    .unit = "ms",
    .scale = 1e3,
    .probe_iters = 10,
    .goal = {"raw", Goal::at_most, 1.3},
}));

double raw_spawn_join(const Run& run) {
    char* argv[] = {const_cast<char*>("mp_bench"), const_cast<char*>(kNoopChildFlag), nullptr};
    return timed(run, [&] {
        pid_t pid = -1;
        if (int e = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ)) {
            errno = e;
            fail_errno("posix_spawn");
        }
        raw::wait_child(pid);
    });
}
double mp_spawn_join(const Run& run) { return mp_start_join(run, "spawn"); }

BENCH_REGISTER(add_impl("process_spawn_start_join", "raw", raw_spawn_join));
BENCH_REGISTER(add_impl("process_spawn_start_join", "multiproc", mp_spawn_join));

// ---- forkserver ----

BENCH_REGISTER(add_row({
    .name = "process_forkserver_start_join",
    .what = "start and join one child process (forkserver start method) whose target does nothing",
    .kind = Kind::latency,
    .unit = "ms",
    .scale = 1e3,
    .probe_iters = 20,
    .goal = {"raw", Goal::at_most, 1.5},
}));

// A raw forkserver: for every byte received, fork a child that exits at once, reap it, and
// answer with its wait status; end at EOF.
double raw_server_fork_join(const Run& run) {
    auto [client, server] = raw::socket_pair();
    pid_t srv = raw::fork_child([fd = server.get(), other = client.get()] {
        ::close(other);
        char req;
        while (::read(fd, &req, 1) == 1) {
            pid_t pid = ::fork();
            if (pid == -1) fail_errno("fork");
            if (pid == 0) ::_exit(0);
            int status = 0;
            while (::waitpid(pid, &status, 0) == -1)
                if (errno != EINTR) fail_errno("waitpid");
            raw::write_all(fd, &status, sizeof status);
        }
    });
    server.close();
    double seconds = timed(run, [fd = client.get()] {
        char req = 'f';
        raw::write_all(fd, &req, 1);
        int status = -1;
        raw::read_full(fd, &status, sizeof status);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("raw server's child failed");
    });
    client.close();
    raw::wait_child(srv);
    return seconds;
}
double raw_fork_join_ref(const Run& run) { return timed(run, raw_fork_once); }
double mp_forkserver_join(const Run& run) { return mp_start_join(run, "forkserver"); }

BENCH_REGISTER(add_impl("process_forkserver_start_join", "raw", raw_server_fork_join));
BENCH_REGISTER(add_impl("process_forkserver_start_join", "raw_fork", raw_fork_join_ref));
BENCH_REGISTER(add_impl("process_forkserver_start_join", "multiproc", mp_forkserver_join));

}  // namespace
}  // namespace bench
