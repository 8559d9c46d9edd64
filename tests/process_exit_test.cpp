// How a child process ends and what happens at a process's exit, run once per start method:
// an uncaught exception's report and exit code, stdio flushed once by each side, exit handlers
// (the parent's never run in the child; the target's own do), daemonic children (they die with
// a killed parent, whichever thread started them, are terminated at exit, and may not have
// children) and non-daemonic ones (joined at exit). Process behaviour while running is in
// process_test.cpp.
#include "multiproc/process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>

#include "helpers/capture.hpp"
#include "helpers/process_fixture.hpp"
#include "helpers/thread_gone.hpp"
#include "multiproc/errors.hpp"
#include "sys/io.hpp"

namespace {

using namespace std::chrono_literals;
using namespace mp::test;  // the fixture, PassFd, the report protocol, Capture
using mp::detail::UniqueFd;

// A process that has gone (no /proc entry, or a zombie waiting for its new parent to reap it).
bool process_gone(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(f, stat)) return true;
    auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() &&
           (stat[close + 2] == 'Z' || stat[close + 2] == 'X');
}


namespace custom {
struct CustomError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
}  // namespace custom

int g_marker_fd = -1;
void marker_atexit() {
    if (g_marker_fd >= 0) static_cast<void>(::write(g_marker_fd, "A", 1));
}
struct MarkerStatic {
    ~MarkerStatic() {
        if (g_marker_fd >= 0) static_cast<void>(::write(g_marker_fd, "D", 1));
    }
} g_marker_static;

TEST_P(ProcessTest, ThrowingTargetReportsAndExitsWithOne) {
    Capture err(2);
    auto a = ctx().Process([] { throw std::runtime_error("boom"); });
    auto b = ctx().Process([] { throw custom::CustomError("custom trouble"); });
    auto c = ctx().Process([] { throw 42; });
    a.start();
    a.join();
    b.start();
    b.join();
    c.start();
    c.join();
    std::string out = err.finish();
    EXPECT_EQ(a.exitcode(), 1);
    EXPECT_EQ(b.exitcode(), 1);
    EXPECT_EQ(c.exitcode(), 1);
    EXPECT_NE(out.find("Process " + a.name() + ":\nTraceback"), std::string::npos) << out;
    EXPECT_NE(out.find("std::runtime_error: boom\n"), std::string::npos) << out;
    EXPECT_NE(out.find("Process " + b.name() + ":"), std::string::npos) << out;
    EXPECT_NE(out.find("custom::CustomError: custom trouble\n"), std::string::npos) << out;
    EXPECT_NE(out.find("\nint\n"), std::string::npos) << out;
}

TEST_P(ProcessTest, StdioIsFlushedOnceByEachSide) {
    Capture out(1);
    std::printf("parent-before ");  // buffered: must not be printed by the child as well
    std::cout << "cout-before ";
    auto a = ctx().Process([] { std::printf("child-return "); });
    auto b = ctx().Process([] {
        std::cout << "child-exit ";
        std::exit(3);
    });
    a.start();
    a.join();
    b.start();
    b.join();
    std::string s = out.finish();
    EXPECT_EQ(count(s, "parent-before"), 1) << s;
    EXPECT_EQ(count(s, "cout-before"), 1) << s;
    EXPECT_EQ(count(s, "child-return"), 1) << s;
    EXPECT_EQ(count(s, "child-exit"), 1) << s;
    EXPECT_EQ(b.exitcode(), 3);
}

TEST_P(ProcessTest, ChildExitDoesNotRunParentExitHandlers) {
    static const bool registered = (std::atexit(marker_atexit) == 0);
    ASSERT_TRUE(registered);
    auto [r, w] = mp::sys::make_pipe();
    g_marker_fd = w.get();
    auto a = ctx().Process([] { std::exit(0); });
    auto b = ctx().Process([] {});
    auto c = ctx().Process([] { throw std::logic_error("x"); });
    {
        Capture err(2);
        a.start();
        b.start();
        c.start();
        g_marker_fd = -1;
        a.join();
        b.join();
        c.join();
    }
    w.reset();
    char buf[16];
    EXPECT_EQ(mp::sys::read_full(r.get(), buf, sizeof buf), 0u) << "an atexit handler or static "
                                                                   "destructor ran in the child";
    EXPECT_EQ(a.exitcode(), 0);
    EXPECT_EQ(b.exitcode(), 0);
    EXPECT_EQ(c.exitcode(), 1);
}

int g_target_marker_fd = -1;
// std::exit in a target runs the exit handlers the target registered, then ends the child
// (and no handler it inherited: ChildExitDoesNotRunParentExitHandlers).
TEST_P(ProcessTest, StdExitRunsTheTargetsOwnExitHandlers) {
    auto [r, w] = mp::sys::make_pipe();
    auto p = ctx().Process(
        [](PassFd f) {
        g_target_marker_fd = f.fd;
        std::atexit([] { static_cast<void>(::write(g_target_marker_fd, "H", 1)); });
        std::exit(4);
        },
        PassFd{w.get()});
    p.start();
    p.join(60s);
    w.reset();
    char buf[4] = {};
    EXPECT_EQ(mp::sys::read_full(r.get(), buf, sizeof buf), 1u);
    EXPECT_EQ(buf[0], 'H');
    EXPECT_EQ(p.exitcode(), 4);
}

// A child that starts a daemonic grandchild (from its main thread, or from another thread) and
// is then SIGKILLed: the grandchild must die too.
void check_daemon_dies_with_killed_parent(const std::string& method, bool from_a_thread) {
    auto [r, w] = mp::sys::make_pipe();
    auto child = mp::get_context(method).Process(
        [](PassFd f, std::string m, bool threaded) {
        auto gc = mp::get_context(m).Process(
            [](PassFd g) {
            write_str(g.fd, std::to_string(::getpid()));
            block_forever();
            },
            f);
        gc.set_daemon(true);
        if (threaded) std::thread([&] { gc.start(); }).join();
        else gc.start();
        block_forever();
        },
        PassFd{w.get()}, method, from_a_thread);
    child.start();
    pid_t grandchild = std::stoi(read_str(r.get()));  // armed: its target runs
    EXPECT_FALSE(process_gone(grandchild));
    child.kill();
    child.join();
    EXPECT_EQ(child.exitcode(), -SIGKILL);
    mp::detail::Deadline deadline(30s);
    while (!process_gone(grandchild) && !deadline.expired()) std::this_thread::sleep_for(5ms);
    EXPECT_TRUE(process_gone(grandchild)) << "daemonic grandchild " << grandchild << " survived";
    if (!process_gone(grandchild)) ::kill(grandchild, SIGKILL);
}

TEST_P(ProcessTest, DaemonicChildDiesWithKilledParent) {
    check_daemon_dies_with_killed_parent(GetParam(), false);
}

// Linux sends a child's death signal when the *thread* that started it ends. A daemonic child
// lives as long as its parent process, whichever thread started it (as in Python).
TEST_P(ProcessTest, DaemonStartedByAThreadOutlivesTheThread) {
    auto [to_child_r, to_child_w] = mp::sys::make_pipe();
    mp::sys::PipeFds from_child = mp::sys::make_pipe();  // not a structured binding: captured below
    UniqueFd& from_child_r = from_child.read;
    UniqueFd& from_child_w = from_child.write;
    auto p = ctx().Process(
        [](PassFd in, PassFd out) {
        mp::sys::write_all(out.fd, "r", 1);  // the target runs once the death signal is armed
        for (char c; mp::sys::read_full(in.fd, &c, 1) == 1;) mp::sys::write_all(out.fd, &c, 1);
        },
        PassFd{to_child_r.get()}, PassFd{from_child_w.get()});
    p.set_daemon(true);
    pid_t starter = 0;
    std::thread t([&] {
        starter = static_cast<pid_t>(::gettid());
        p.start();
        // The thread ends only after the child armed its death signal (else nothing is tested).
        char ready = 0;
        EXPECT_EQ(mp::sys::read_full(from_child_r.get(), &ready, 1), 1u);
    });
    t.join();
    mp::test::wait_thread_gone(starter);
    // A round trip after the signal was sent: the child handles a signal before it runs on.
    char c = 'x';
    mp::sys::write_all(to_child_w.get(), &c, 1);
    c = 0;
    ASSERT_TRUE(readable(from_child_r.get(), 30s))
        << "the daemon died with the thread that started it";
    EXPECT_EQ(::read(from_child_r.get(), &c, 1), 1);
    EXPECT_EQ(c, 'x');
    EXPECT_TRUE(p.is_alive());
    p.terminate();
    p.join(60s);
    EXPECT_EQ(p.exitcode(), -SIGTERM);
}

// ... and still dies with its parent process, even one killed by SIGKILL.
TEST_P(ProcessTest, DaemonStartedByAThreadDiesWithKilledParent) {
    check_daemon_dies_with_killed_parent(GetParam(), true);
}

TEST_P(ProcessTest, NonDaemonicChildrenAreJoinedAtExit) {
    auto [r, w] = mp::sys::make_pipe();
    mp::sys::set_nonblocking(r.get(), true);
    auto child = ctx().Process(
        [](PassFd f, std::string method) {
        auto gc = mp::get_context(method).Process(
            [](PassFd g) {
            std::this_thread::sleep_for(200ms);  // outlasts the parent's std::exit call
            mp::sys::write_all(g.fd, "G", 1);
            },
            f);
        gc.start();
        std::exit(3);  // without join: the exit handler joins gc first
        },
        PassFd{w.get()}, GetParam());
    child.start();
    child.join(60s);
    ASSERT_EQ(child.exitcode(), 3);
    char c = 0;
    // Non-blocking: the grandchild's mark is there only if the child waited for it.
    EXPECT_EQ(::read(r.get(), &c, 1), 1);
    EXPECT_EQ(c, 'G');
}

TEST_P(ProcessTest, DaemonicChildrenAreTerminatedAtExit) {
    auto [r, w] = mp::sys::make_pipe();
    auto child = ctx().Process(
        [](PassFd f, std::string method) {
        const int fd = f.fd;
        auto [ready_r, ready_w] = mp::sys::make_pipe();
        auto gc = mp::get_context(method).Process(
            [](PassFd g) {
            mp::sys::write_all(g.fd, "r", 1);
            block_forever();
            },
            PassFd{ready_w.get()});
        gc.set_daemon(true);
        gc.start();
        char c;
        static_cast<void>(mp::sys::read_full(ready_r.get(), &c, 1));  // gc is running its target
        write_str(fd, std::to_string(*gc.pid()));
        // Returns without join: at exit the daemonic gc is terminated, then joined.
        },
        PassFd{w.get()}, GetParam());
    child.start();
    pid_t grandchild = std::stoi(read_str(r.get()));
    child.join(60s);
    EXPECT_EQ(child.exitcode(), 0);
    if (child.is_alive()) {
        child.kill();
        child.join();
    }
    mp::detail::Deadline deadline(30s);
    while (!process_gone(grandchild) && !deadline.expired()) std::this_thread::sleep_for(5ms);
    EXPECT_TRUE(process_gone(grandchild));
}

TEST_P(ProcessTest, DaemonicProcessMayNotStartChildren) {
    auto [r, w] = mp::sys::make_pipe();
    auto p = ctx().Process(
        [](PassFd f) {
        mp::Process gc([] {});
        try {
            gc.start();
            write_str(f.fd, "started");
        } catch (const mp::UsageError& e) {
            write_str(f.fd, e.what());
        }
        },
        PassFd{w.get()});
    p.set_daemon(true);
    p.start();
    std::string what = read_str(r.get());
    EXPECT_NE(what.find("daemonic processes are not allowed to have children"), std::string::npos)
        << what;
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ProcessTest,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });


// Fork-specific: a FILE* of the program's own with buffered output at start() is the program's
// to flush (Python flushes only the standard streams too); the child, which leaves through
// _exit, never writes the parent's buffer a second time.
TEST(ForkStdio, OwnStreamsBufferedInTheParentAreWrittenOnce) {
    int fd = ::memfd_create("stdio", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    FILE* f = ::fdopen(::dup(fd), "w");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::setvbuf(f, nullptr, _IOFBF, 4096), 0);
    std::fputs("parent-data ", f);  // buffered in this process (and so in the child's copy)
    auto p = mp::get_context("fork").Process([] {});
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    std::fclose(f);  // the parent's buffer reaches the file now, once
    std::string content(64, '\0');
    ssize_t n = ::pread(fd, content.data(), content.size(), 0);
    ::close(fd);
    ASSERT_GE(n, 0);
    content.resize(static_cast<std::size_t>(n));
    EXPECT_EQ(content, "parent-data ");
}
}  // namespace
