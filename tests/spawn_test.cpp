// The start methods under every method (exit codes, signals, exceptions, handles, identity) and
// what is particular to spawn: the child is a fresh exec that inherits only what it is given,
// enters through mp::init, and a program without mp::init is stopped with a clear error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "multiproc/connection.hpp"
#include "multiproc/context.hpp"
#include "multiproc/process.hpp"
#include "start_methods_lib.hpp"

extern char** environ;

namespace {

// A descriptor passed as a user-defined handle: the generic mechanism every handle uses.
struct RawFd {
    int fd = -1;
    void save(mp::Encoder& e) const { e.add_fd(fd); }
    void load(mp::Decoder& d) { fd = d.take_fd().release(); }
};

void return_normally() {}
void exit_with(int code) { std::exit(code); }
void throw_runtime_error() { throw std::runtime_error("boom from the child"); }
void kill_self(int sig) { ::raise(sig); }
void sleep_long() { ::sleep(60); }

void report_identity(mp::Connection c) {
    auto parent = mp::parent_process();
    c.send(mp::current_process().name());
    c.send(mp::current_process().identity());
    c.send(mp::current_process().daemon());
    c.send(parent ? static_cast<int>(parent->pid()) : -1);
    c.send(parent ? parent->name() : std::string("none"));
    c.send(parent ? parent->is_alive() : false);
}

// Writes a line through a descriptor that arrived as a RawFd, then closes it.
void write_to_raw(RawFd f, std::string line) {
    if (::write(f.fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::exit(2);
    ::close(f.fd);
}

// Exits 0 when `fd` is not open in this process, 1 when it is.
void check_not_inherited(int fd) {
    std::exit(::fcntl(fd, F_GETFD) == -1 && errno == EBADF ? 0 : 1);
}

class StartMethods : public ::testing::TestWithParam<std::string> {
protected:
    mp::Context ctx() const { return mp::get_context(GetParam()); }
};

// What differs by design between fork (the child is a copy of the parent) and the methods
// whose child is a fresh process (spawn, forkserver): only the latter are instantiated here;
// the fork counterparts are the ForkChildIsACopy tests below.
class ShippedStartMethods : public StartMethods {};

int run(const mp::Context& ctx, mp::Process p) {
    static_cast<void>(ctx);
    p.start();
    p.join();
    return p.exitcode().value_or(-999);
}

TEST_P(StartMethods, ExitCodesFollowPython) {
    EXPECT_EQ(run(ctx(), ctx().Process(&return_normally)), 0);
    EXPECT_EQ(run(ctx(), ctx().Process(&exit_with, 7)), 7);
    EXPECT_EQ(run(ctx(), ctx().Process(&exit_with, 0)), 0);
    EXPECT_EQ(run(ctx(), ctx().Process(&kill_self, SIGKILL)), -SIGKILL);
    EXPECT_EQ(run(ctx(), ctx().Process(&kill_self, SIGABRT)), -SIGABRT);
}

TEST_P(StartMethods, TerminateAndKill) {
    auto p = ctx().Process(&sleep_long);
    p.start();
    EXPECT_TRUE(p.is_alive());
    p.terminate();
    p.join();
    EXPECT_EQ(p.exitcode(), -SIGTERM);
    auto q = ctx().Process(&sleep_long);
    q.start();
    q.kill();
    q.join();
    EXPECT_EQ(q.exitcode(), -SIGKILL);
}

TEST_P(StartMethods, ExceptionIsExitCodeOne) {
    EXPECT_EQ(run(ctx(), ctx().Process(&throw_runtime_error)), 1);
}

TEST_P(StartMethods, ConnectionArgumentWorksInTheChild) {
    auto [a, b] = mp::Pipe();
    auto p = ctx().Process(&start_methods_lib::reply_and_exit, 4, b);
    p.start();
    b.close();
    EXPECT_EQ(a.recv<int>(), 40);
    p.join();
    EXPECT_EQ(p.exitcode(), 4);  // the target lives in a shared library
}

TEST_P(StartMethods, RawDescriptorArgumentWorksInTheChild) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    auto p = ctx().Process(&write_to_raw, RawFd{fds[1]}, std::string("through a raw descriptor"));
    p.start();
    ::close(fds[1]);
    std::string got(64, '\0');
    ssize_t n = ::read(fds[0], got.data(), got.size());
    ::close(fds[0]);
    p.join();
    ASSERT_GT(n, 0);
    got.resize(static_cast<std::size_t>(n));
    EXPECT_EQ(got, "through a raw descriptor");
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(StartMethods, CurrentAndParentProcess) {
    auto [a, b] = mp::Pipe();
    auto p = ctx().Process(&report_identity, b);
    p.set_name("worker-7");
    p.set_daemon(true);
    p.start();
    b.close();
    EXPECT_EQ(a.recv<std::string>(), "worker-7");
    EXPECT_EQ(a.recv<std::vector<int>>().size(), 1u);
    EXPECT_TRUE(a.recv<bool>());
    EXPECT_EQ(a.recv<int>(), static_cast<int>(::getpid()));
    EXPECT_EQ(a.recv<std::string>(), "MainProcess");
    EXPECT_TRUE(a.recv<bool>());
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(ShippedStartMethods, UnshippableTargetIsAClearStartError) {
    std::string captured = "not trivially copyable";
    auto p = ctx().Process([captured] { static_cast<void>(captured.size()); });
    try {
        p.start();
        FAIL() << "start() accepted a lambda capturing a std::string under " << GetParam();
    } catch (const mp::ProcessError& e) {
        EXPECT_NE(std::string(e.what()).find("target"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(p.pid());  // nothing was started
}

// A descriptor opened without O_CLOEXEC, at a high number so that no descriptor the child opens
// for itself can take the same slot. The caller closes it.
int inheritable_high_fd() {
    int low = ::open("/dev/null", O_RDONLY);
    if (low < 0) return -1;
    int fd = ::fcntl(low, F_DUPFD, 700);
    ::close(low);
    return fd;
}

TEST_P(ShippedStartMethods, DescriptorsNotGivenAreNotInherited) {
    // Deliberately without O_CLOEXEC: the start method itself must not let it through.
    int fd = inheritable_high_fd();
    ASSERT_GE(fd, 700);
    EXPECT_EQ(run(ctx(), ctx().Process(&check_not_inherited, fd)), 0);
    ::close(fd);
}

// set_executable: spawn (and a forkserver started afterwards) executes the given program. A
// copy of this binary is the same build: the child runs the target there. Another program's
// build refuses the shipped call (exit code 1), and its main() never runs the target.
void report_executable(mp::Connection c) {
    c.send(std::filesystem::read_symlink("/proc/self/exe").string());
}

struct ExecutableGuard {
    ~ExecutableGuard() {
        mp::set_executable("");
        mp::detail::stop_forkserver();  // the next forkserver runs this binary again
    }
};

TEST_P(ShippedStartMethods, SetExecutableRunsACopyAndRefusesAnotherBuild) {
    ExecutableGuard restore;
    const std::string copy =
        (std::filesystem::temp_directory_path() / ("mp-exe-copy-" + std::to_string(::getpid())))
            .string();
    std::filesystem::copy_file("/proc/self/exe", copy,
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::permissions(copy, std::filesystem::perms::owner_all);
    mp::detail::stop_forkserver();
    mp::set_executable(copy);
    EXPECT_EQ(mp::get_executable(), copy);
    {
        auto [in, out] = mp::Pipe(false);
        EXPECT_EQ(run(ctx(), ctx().Process(report_executable, out)), 0);
        EXPECT_EQ(in.recv<std::string>(), copy);
    }
    mp::detail::stop_forkserver();
    mp::set_executable(MP_OTHER_BUILD_HELPER);
    {
        auto [in, out] = mp::Pipe(false);
        EXPECT_EQ(run(ctx(), ctx().Process(report_executable, out)), 1);
        out.close();
        EXPECT_THROW(static_cast<void>(in.recv_bytes()), mp::EOFError);  // the target never ran
    }
    std::filesystem::remove(copy);
    mp::set_executable("");
    EXPECT_EQ(mp::get_executable(), "/proc/self/exe");
}

INSTANTIATE_TEST_SUITE_P(FreshChild, ShippedStartMethods, ::testing::Values("spawn", "forkserver"),
                         [](const auto& info) { return info.param; });

// The fork counterparts: the child is a copy of the parent, so a lambda capturing anything runs,
// and every descriptor of the parent is there (as in Python; nothing is closed for it).
TEST(ForkChildIsACopy, CapturingLambdaRuns) {
    auto fork = mp::get_context("fork");
    std::string captured = "not trivially copyable";
    std::vector<int> numbers{1, 2, 3};
    auto p = fork.Process([captured, numbers] {
        std::exit(captured == "not trivially copyable" && numbers.size() == 3 ? 42 : 1);
    });
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 42);
}

TEST(ForkChildIsACopy, EveryDescriptorIsInherited) {
    int fd = inheritable_high_fd();
    ASSERT_GE(fd, 700);
    int cloexec = ::fcntl(fd, F_DUPFD_CLOEXEC, 800);  // close-on-exec does not matter to fork
    ASSERT_GE(cloexec, 800);
    auto fork = mp::get_context("fork");
    // check_not_inherited exits 1 when the descriptor is open in the child.
    EXPECT_EQ(run(fork, fork.Process(&check_not_inherited, fd)), 1);
    EXPECT_EQ(run(fork, fork.Process(&check_not_inherited, cloexec)), 1);
    ::close(fd);
    ::close(cloexec);
}

INSTANTIATE_TEST_SUITE_P(AllMethods, StartMethods, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

// The child's stderr, captured by pointing this process's descriptor 2 at a pipe while a
// spawned child (which inherits stdio at exec) runs.
TEST(Spawn, ExceptionIsPrintedInPythonsForm) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    int saved = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
    ASSERT_GE(saved, 0);
    std::fflush(stderr);
    ::dup2(fds[1], 2);
    auto p = mp::get_context("spawn").Process(&throw_runtime_error);
    p.set_name("Process-boom");
    p.start();
    p.join();
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    ::close(fds[1]);
    std::string err;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
        err.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    EXPECT_EQ(p.exitcode(), 1);
    EXPECT_NE(err.find("Process Process-boom:"), std::string::npos) << err;
    EXPECT_NE(err.find("std::runtime_error: boom from the child"), std::string::npos) << err;
}

// Runs the helper program built without mp::init; returns its exit code and its output.
std::pair<int, std::string> run_noinit_helper(const char* method) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
    env_s.push_back(std::string("MP_TEST_METHOD=") + method);
    std::vector<char*> env;
    for (auto& s : env_s) env.push_back(s.data());
    env.push_back(nullptr);
    char* argv[] = {const_cast<char*>(MP_NOINIT_HELPER), nullptr};
    pid_t pid = -1;
    int e = posix_spawn(&pid, MP_NOINIT_HELPER, &fa, nullptr, argv, env.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
        out.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    EXPECT_EQ(e, 0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), out};
}

TEST(Spawn, MissingInitIsAClearErrorNotARecursiveMain) {
    for (const char* method : {"spawn", "forkserver"}) {
        SCOPED_TRACE(method);
        auto [code, out] = run_noinit_helper(method);
        EXPECT_EQ(code, 3) << out;
        EXPECT_NE(out.find("ProcessError: "), std::string::npos) << out;
        EXPECT_NE(out.find("mp::init(argc, argv)"), std::string::npos) << out;
        // The child's own message, before it exits (Python's bootstrapping-phase message).
        EXPECT_NE(out.find("bootstrapping phase"), std::string::npos) << out;
        // main ran twice (parent + child), never three times: the child did not recurse.
        std::size_t count = 0;
        for (std::size_t at = out.find("main ran"); at != std::string::npos;
             at = out.find("main ran", at + 1))
            ++count;
        EXPECT_EQ(count, 2u) << out;
    }
}

}  // namespace
