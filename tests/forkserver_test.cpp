// What is particular to the forkserver: one clean server forks every child, is restarted when
// it died, serves several threads at once, and takes its daemonic children along when the
// program lets go of it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "forkserver.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/context.hpp"
#include "multiproc/process.hpp"
#include "start_methods_lib.hpp"

namespace {

void exit_with(int code) { std::exit(code); }
void send_ppid(mp::Connection c) { c.send(static_cast<int>(::getppid())); }
void wait_for_go(mp::Connection c) {
    c.send(1);
    static_cast<void>(c.recv<int>());
}
void block_forever(mp::Connection c) {
    c.send(1);
    for (;;) ::pause();
}

class ForkServer : public ::testing::Test {
protected:
    mp::Context ctx = mp::get_context("forkserver");
};

void send_bind_now(mp::Connection c) {
    const char* v = std::getenv("LD_BIND_NOW");
    c.send(std::string(v ? v : "<unset>"));
}

// Waits (bounded) until process `pid`, which is not our child, has exited.
bool wait_gone(pid_t pid) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) return true;
    for (int i = 0; i < 2000 && ::syscall(SYS_pidfd_send_signal, fd, 0, nullptr, 0) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    bool gone = ::syscall(SYS_pidfd_send_signal, fd, 0, nullptr, 0) != 0;
    ::close(fd);
    return gone;
}

// The server is started with LD_BIND_NOW=1 (so that its children find every function bound);
// the children must not see it, since they may exec programs of their own.
TEST_F(ForkServer, ChildrenDoNotInheritTheServersBindNow) {
    ASSERT_EQ(std::getenv("LD_BIND_NOW"), nullptr) << "run this test without LD_BIND_NOW";
    auto [a, b] = mp::Pipe();
    auto p = ctx.Process(&send_bind_now, b);
    p.start();
    EXPECT_EQ(a.recv<std::string>(), "<unset>");
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(ForkServer, ChildrenAreForkedByOneServer) {
    auto [a, b] = mp::Pipe();
    for (int i = 0; i < 2; ++i) {
        auto p = ctx.Process(&send_ppid, b);
        p.start();
        EXPECT_EQ(a.recv<int>(), static_cast<int>(mp::detail::forkserver_pid()));
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
    }
    EXPECT_NE(mp::detail::forkserver_pid(), ::getpid());
}

TEST_F(ForkServer, KilledServerIsRestartedOnNextUse) {
    auto p = ctx.Process(&exit_with, 5);
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 5);
    const pid_t first = mp::detail::forkserver_pid();
    ASSERT_GT(first, 0);
    ASSERT_EQ(::kill(first, SIGKILL), 0);
    // The server is our child: it stays a zombie until the library notices and reaps it.
    for (int i = 0; i < 2000; ++i) {
        char path[64];
        std::snprintf(path, sizeof path, "/proc/%d/stat", first);
        FILE* f = std::fopen(path, "r");
        if (!f) break;
        char state = 0;
        int r = std::fscanf(f, "%*d %*s %c", &state);
        std::fclose(f);
        if (r == 1 && state == 'Z') break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    auto q = ctx.Process(&exit_with, 6);
    q.start();
    q.join();
    EXPECT_EQ(q.exitcode(), 6);
    EXPECT_NE(mp::detail::forkserver_pid(), first);
}

TEST_F(ForkServer, ChildOutlivesAKilledServer) {
    auto [a, b] = mp::Pipe();
    auto p = ctx.Process(&wait_for_go, b);
    p.start();
    ASSERT_EQ(a.recv<int>(), 1);
    const pid_t server = mp::detail::forkserver_pid();
    ASSERT_EQ(::kill(server, SIGKILL), 0);
    mp::detail::stop_forkserver();  // reaps the dead server
    EXPECT_TRUE(p.is_alive());
    a.send(1);
    p.join();
    // The server died before it could report the status: Python's 255.
    EXPECT_EQ(p.exitcode(), 255);
}

TEST_F(ForkServer, DaemonicChildrenGoWhenTheProgramLetsGo) {
    auto [a, b] = mp::Pipe();
    auto p = ctx.Process(&block_forever, b);
    p.set_daemon(true);
    p.start();
    ASSERT_EQ(a.recv<int>(), 1);
    const pid_t child = *p.pid();
    mp::detail::stop_forkserver();  // what the program's exit (or death) does
    EXPECT_TRUE(wait_gone(child));
    p.join();
    EXPECT_TRUE(p.exitcode().has_value());
}

TEST_F(ForkServer, MultiThreadedParentStartsChildren) {
    constexpr int kThreads = 4, kEach = 5;
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                auto [a, b] = mp::Pipe();
                auto p = ctx.Process(&start_methods_lib::reply_and_exit, t * 10 + i, b);
                p.start();
                b.close();
                int got = a.recv<int>();
                p.join();
                if (got == (t * 10 + i) * 10 && p.exitcode() == t * 10 + i) ++ok;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(ok.load(), kThreads * kEach);
}

TEST_F(ForkServer, StopWithoutServerIsHarmless) {
    mp::detail::stop_forkserver();
    EXPECT_EQ(mp::detail::forkserver_pid(), 0);
}

}  // namespace
