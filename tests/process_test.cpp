// Process behaviour, once per start method: start, join, exit codes, signals, sentinel, misuse,
// names, current/parent process, active_children, cpu counts, starts from threads, fork's own
// cases. How a child ends and a process's exit (handlers, stdio, daemons): process_exit_test.cpp.
#include "multiproc/process.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "helpers/capture.hpp"
#include "helpers/idle_thread.hpp"
#include "helpers/process_fixture.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/signals.hpp"
#include "popen.hpp"
#include "sys/io.hpp"

namespace {

using namespace std::chrono_literals;
using namespace mp::test;  // the fixture, PassFd, the report protocol, Capture
using mp::detail::UniqueFd;

TEST_P(ProcessTest, StartJoinExitcodeZero) {
    auto p = ctx().Process([] {});
    EXPECT_FALSE(p.exitcode());
    EXPECT_FALSE(p.pid());
    EXPECT_FALSE(p.is_alive());
    p.start();
    ASSERT_TRUE(p.pid());
    EXPECT_GT(*p.pid(), 0);
    EXPECT_NE(*p.pid(), ::getpid());
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_FALSE(p.is_alive());
    p.join();  // joining again is harmless, as in Python
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(ProcessTest, ArgumentsAreCopiedIntoTheChild) {
    auto [r, w] = mp::sys::make_pipe();
    std::string text = "payload";
    std::vector<int> v{1, 2, 3};
    auto p = ctx().Process(
        [](PassFd f, std::string s, const std::vector<int>& xs, int k) {
        write_str(f.fd, s + ":" + std::to_string(xs.size()) + ":" + std::to_string(k));
        },
        PassFd{w.get()}, text, v, 42);
    text = "changed";  // the Process holds its own copies
    p.start();
    EXPECT_EQ(read_str(r.get()), "payload:3:42");
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(ProcessTest, ExitCodeOfStdExit) {
    auto p = ctx().Process([] { std::exit(7); });
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 7);
}

TEST_P(ProcessTest, KilledBySignalIsNegative) {
    auto p = ctx().Process([] { ::raise(SIGUSR1); });
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), -SIGUSR1);
}

TEST_P(ProcessTest, TerminateAndKill) {
    auto t = ctx().Process(block_forever);
    auto k = ctx().Process(block_forever);
    t.start();
    k.start();
    EXPECT_TRUE(t.is_alive());
    EXPECT_TRUE(k.is_alive());
    t.terminate();
    k.kill();
    t.join();
    k.join();
    EXPECT_EQ(t.exitcode(), -SIGTERM);
    EXPECT_EQ(k.exitcode(), -SIGKILL);
    t.terminate();  // after the child was reaped: nothing happens
    k.kill();
}

// A child that holds a SigintGuard and waits on a Pipe: interrupt() reaches it as
// mp::KeyboardInterrupt, which it reports before exiting 0.
void wait_for_ctrl_c(mp::Connection ready, mp::Connection never) {
    mp::SigintGuard guard;
    ready.send(std::string("guarded"));
    try {
        static_cast<void>(never.recv_bytes());
    } catch (const mp::KeyboardInterrupt&) {
        ready.send(std::string("interrupted"));
        std::exit(0);
    }
    std::exit(5);
}

TEST_P(ProcessTest, InterruptSendsSigint) {
    auto plain = ctx().Process(block_forever);
    plain.start();
    plain.interrupt();
    plain.join();
    EXPECT_EQ(plain.exitcode(), -SIGINT);  // the default disposition: Ctrl-C ends it
    plain.interrupt();                     // after the child was reaped: nothing happens

    auto [in, out] = mp::Pipe();
    auto [never_r, never_w] = mp::Pipe();
    auto guarded = ctx().Process(wait_for_ctrl_c, out, never_r);
    guarded.start();
    EXPECT_EQ(in.recv<std::string>(), "guarded");
    guarded.interrupt();
    EXPECT_EQ(in.recv<std::string>(), "interrupted");
    guarded.join(std::chrono::seconds(60));
    EXPECT_EQ(guarded.exitcode(), std::optional<int>(0));
}

TEST(CurrentProcess, IsAliveAndHasNoExitcode) {
    EXPECT_TRUE(mp::current_process().is_alive());
    EXPECT_EQ(mp::current_process().exitcode(), std::nullopt);
}

// Python's current_process().is_alive() / .exitcode in a child: True / None.
void report_self(mp::Connection out) {
    const auto self = mp::current_process();
    out.send(std::pair<bool, int>(self.is_alive(), self.exitcode().value_or(-1000)));
}

TEST_P(ProcessTest, CurrentProcessInAChildIsAliveWithoutExitcode) {
    auto [in, out] = mp::Pipe(false);
    auto p = ctx().Process(report_self, out);
    p.start();
    EXPECT_EQ((in.recv<std::pair<bool, int>>()), (std::pair<bool, int>(true, -1000)));
    p.join(std::chrono::seconds(60));
    EXPECT_EQ(p.exitcode(), std::optional<int>(0));
}

// A child starts with SIGINT and SIGCHLD unblocked and SIGINT at its default, whatever the
// start method (the forkserver blocks both for itself and gives them back to each child).
TEST_P(ProcessTest, ChildStartsWithDefaultSignalState) {
    auto [r, w] = mp::sys::make_pipe();
    auto p = ctx().Process(
        [](PassFd f) {
        sigset_t mask;
        ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
        struct sigaction sa {};
        ::sigaction(SIGINT, nullptr, &sa);
        write_str(f.fd, std::to_string(sigismember(&mask, SIGINT)) +
                            std::to_string(sigismember(&mask, SIGCHLD)) +
                            (sa.sa_handler == SIG_DFL ? "default" : "changed"));
        },
        PassFd{w.get()});
    p.start();
    EXPECT_EQ(read_str(r.get()), "00default");
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

// Ctrl-C reaches every process of the foreground group: a child ends by it, as in Python.
TEST_P(ProcessTest, SigintEndsAChild) {
    auto [r, w] = mp::sys::make_pipe();
    auto p = ctx().Process(
        [](PassFd f) {
        write_str(f.fd, "ready");
        block_forever();
        },
        PassFd{w.get()});
    p.start();
    ASSERT_EQ(read_str(r.get()), "ready");
    ASSERT_EQ(::kill(*p.pid(), SIGINT), 0);
    p.join(20s);
    if (p.is_alive()) {  // SIGINT was blocked or ignored
        p.kill();
        p.join();
    }
    EXPECT_EQ(p.exitcode(), -SIGINT);
}

TEST_P(ProcessTest, JoinWithTimeoutReturnsWhileRunning) {
    auto [r, w] = mp::sys::make_pipe();
    auto p = ctx().Process(
        [](PassFd f) {
        char c;
        std::exit(mp::sys::read_full(f.fd, &c, 1) == 1 ? 5 : 6);
        },
        PassFd{r.get()});
    p.start();
    p.join(20ms);
    EXPECT_TRUE(p.is_alive());
    EXPECT_FALSE(p.exitcode());
    p.join(0s);
    EXPECT_TRUE(p.is_alive());
    mp::sys::write_all(w.get(), "x", 1);
    p.join(60s);
    EXPECT_FALSE(p.is_alive());
    EXPECT_EQ(p.exitcode(), 5);
}

TEST_P(ProcessTest, SentinelBecomesReadableAtExit) {
    auto [r, w] = mp::sys::make_pipe();
    auto p = ctx().Process(
        [](PassFd f) {
        char c;
        static_cast<void>(mp::sys::read_full(f.fd, &c, 1));
        },
        PassFd{r.get()});
    EXPECT_THROW(static_cast<void>(p.sentinel()), mp::UsageError);
    p.start();
    int s = p.sentinel();
    EXPECT_GE(s, 0);
    EXPECT_FALSE(readable(s, 0s));
    mp::sys::write_all(w.get(), "x", 1);
    EXPECT_TRUE(readable(s, 60s));
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(ProcessTest, MisuseIsAUsageError) {
    auto [r, w] = mp::sys::make_pipe();
    auto p = ctx().Process(
        [](PassFd f) {
        char c;
        static_cast<void>(mp::sys::read_full(f.fd, &c, 1));
        },
        PassFd{r.get()});
    EXPECT_THROW(p.join(), mp::UsageError);       // not started
    EXPECT_THROW(p.terminate(), mp::UsageError);  // not started
    p.start();
    EXPECT_THROW(p.start(), mp::UsageError);
    EXPECT_THROW(p.set_daemon(true), mp::UsageError);
    EXPECT_THROW(p.close(), mp::UsageError);  // still running
    EXPECT_TRUE(p.is_alive());
    mp::sys::write_all(w.get(), "x", 1);
    p.join();
    p.close();
    p.close();  // twice is fine, as in Python
    EXPECT_THROW(static_cast<void>(p.pid()), mp::UsageError);
    EXPECT_THROW(static_cast<void>(p.exitcode()), mp::UsageError);
    EXPECT_THROW(p.start(), mp::UsageError);
    mp::Process moved = std::move(p);
    EXPECT_THROW(static_cast<void>(p.name()), mp::UsageError);  // NOLINT: use after move on purpose
    EXPECT_THROW(static_cast<void>(moved.is_alive()), mp::UsageError);  // closed
}

TEST_P(ProcessTest, NamesAndDaemonFlag) {
    auto a = ctx().Process([] {});
    auto b = ctx().Process([] {});
    ASSERT_EQ(a.name().rfind("Process-", 0), 0u) << a.name();
    int n = std::stoi(a.name().substr(8));
    EXPECT_EQ(b.name(), "Process-" + std::to_string(n + 1));
    b.set_name("worker");
    EXPECT_EQ(b.name(), "worker");
    EXPECT_FALSE(a.daemon());
    a.set_daemon(true);
    EXPECT_TRUE(a.daemon());
}

TEST_P(ProcessTest, CurrentAndParentProcessSeenFromChild) {
    EXPECT_EQ(mp::current_process().name(), "MainProcess");
    EXPECT_EQ(mp::current_process().pid(), ::getpid());
    EXPECT_FALSE(mp::current_process().daemon());
    EXPECT_TRUE(mp::current_process().identity().empty());
    EXPECT_FALSE(mp::parent_process());

    auto [r, w] = mp::sys::make_pipe();
    auto p = ctx().Process(
        [](PassFd f) {
        const int fd = f.fd;
        auto me = mp::current_process();
        auto parent = mp::parent_process();
        write_str(fd, me.name());
        write_str(fd, std::to_string(me.pid()) + " " + std::to_string(me.daemon()) + " " +
                          std::to_string(me.identity().size()));
        write_str(fd, parent ? parent->name() + " " + std::to_string(parent->pid()) + " " +
                                   std::to_string(parent->is_alive())
                             : "none");
        // A Process made here is named after this one: Process-N:1.
        mp::Process grandchild([] {});
        write_str(fd, grandchild.name());
        },
        PassFd{w.get()});
    p.set_daemon(true);
    p.start();
    EXPECT_EQ(read_str(r.get()), p.name());
    EXPECT_EQ(read_str(r.get()), std::to_string(*p.pid()) + " 1 1");
    EXPECT_EQ(read_str(r.get()), "MainProcess " + std::to_string(::getpid()) + " 1");
    EXPECT_EQ(read_str(r.get()), p.name() + ":1");
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(ProcessTest, ParentProcessWatchesTheParent) {
    auto [r, w] = mp::sys::make_pipe();
    auto q = ctx().Process(
        [](PassFd f) {
        const int fd = f.fd;
        auto parent = mp::parent_process();
        if (!parent) std::exit(10);
        parent->join(10ms);  // the parent is alive: times out
        write_str(fd, parent->is_alive() ? "alive" : "ended");
        write_str(fd, parent->sentinel() >= 0 ? "pidfd" : "none");
        },
        PassFd{w.get()});
    q.start();
    EXPECT_EQ(read_str(r.get()), "alive");
    EXPECT_EQ(read_str(r.get()), "pidfd");
    q.join();
    EXPECT_EQ(q.exitcode(), 0);

    // child -> grandchild; the child is SIGKILLed and the grandchild sees its parent end.
    auto child = ctx().Process(
        [](PassFd f, std::string method) {
        auto gc = mp::get_context(method).Process(
            [](PassFd g) {
            write_str(g.fd, "ready");
            auto parent = mp::parent_process();
            if (!parent) std::exit(10);
            parent->join(60s);
            write_str(g.fd, parent->is_alive() ? "alive" : "ended");
            },
            f);
        gc.start();
        block_forever();
        },
        PassFd{w.get()}, GetParam());
    child.start();
    EXPECT_EQ(read_str(r.get()), "ready");
    child.kill();
    child.join();
    EXPECT_EQ(read_str(r.get()), "ended");
}

// parent_process() first asked after the parent has died: the child must not take whatever
// now has the parent's pid for it (the parent's pidfd is opened on first use, and checked).
TEST_P(ProcessTest, ParentProcessFirstAskedAfterTheParentDied) {
    auto [r, w] = mp::sys::make_pipe();
    auto [go_r, go_w] = mp::sys::make_pipe();
    auto child = ctx().Process(
        [](PassFd f, PassFd go, std::string method) {
        auto gc = mp::get_context(method).Process(
            [](PassFd g, PassFd ggo) {
            write_str(g.fd, "ready");
            if (read_str(ggo.fd) != "go") std::exit(11);
            auto parent = mp::parent_process();
            if (!parent) std::exit(10);
            write_str(g.fd, parent->is_alive() ? "alive" : "ended");
            const int s = parent->sentinel();
            pollfd p{s, POLLIN, 0};
            // No descriptor (the parent was gone before one was opened), or a readable one.
            write_str(g.fd, s < 0 || ::poll(&p, 1, 0) == 1 ? "ok" : "sentinel not readable");
            parent->join(60s);  // returns at once
            write_str(g.fd, "joined");
            },
            f, go);
        gc.start();
        block_forever();
        },
        PassFd{w.get()}, PassFd{go_r.get()}, GetParam());
    child.start();
    EXPECT_EQ(read_str(r.get()), "ready");
    child.kill();
    child.join();
    write_str(go_w.get(), "go");
    EXPECT_EQ(read_str(r.get()), "ended");
    EXPECT_EQ(read_str(r.get()), "ok");
    EXPECT_EQ(read_str(r.get()), "joined");
}

// Several threads wait for one child at once, in every way: one blocking join reaps it, the
// others must all see the same exit code (none may steal the status or lose it).
TEST_P(ProcessTest, ConcurrentJoinsAndPollsAgreeOnTheExitCode) {
    for (int round = 0; round < 5; ++round) {
        auto [r, w] = mp::sys::make_pipe();
        auto p = ctx().Process(
            [](PassFd f) {
            static_cast<void>(read_str(f.fd));  // until the parent has its waiters in place
            std::exit(5);
            },
            PassFd{r.get()});
        p.start();
        std::atomic<int> ready{0};
        std::vector<std::optional<int>> seen(4);
        std::vector<std::thread> ts;
        ts.emplace_back([&] {
            ++ready;
            p.join();
            seen[0] = p.exitcode();
        });
        ts.emplace_back([&] {
            ++ready;
            p.join();
            seen[1] = p.exitcode();
        });
        ts.emplace_back([&] {
            ++ready;
            while (p.is_alive()) std::this_thread::sleep_for(100us);
            seen[2] = p.exitcode();
        });
        ts.emplace_back([&] {
            ++ready;
            while (!p.exitcode()) p.join(1ms);
            seen[3] = p.exitcode();
        });
        while (ready.load() < 4) std::this_thread::yield();
        std::this_thread::sleep_for(5ms);  // let the joins block
        write_str(w.get(), "exit");
        for (auto& t : ts) t.join();
        for (int i = 0; i < 4; ++i) EXPECT_EQ(seen[i], std::optional<int>(5)) << "waiter " << i;
    }
}

TEST_P(ProcessTest, ActiveChildrenReapsFinishedAndAbandonedChildren) {
    auto [r, w] = mp::sys::make_pipe();
    auto waiter = [](PassFd f) {
        char c;
        static_cast<void>(mp::sys::read_full(f.fd, &c, 1));
    };
    auto kept = ctx().Process(waiter, PassFd{r.get()});
    kept.start();
    pid_t abandoned_pid;
    {
        auto abandoned = ctx().Process(waiter, PassFd{r.get()});
        abandoned.start();
        abandoned_pid = *abandoned.pid();
    }  // destroyed while running: stays registered, not leaked, not killed
    auto kids = mp::active_children();
    std::vector<pid_t> pids;
    for (auto& k : kids) pids.push_back(*k.pid());
    EXPECT_EQ(kids.size(), 2u);
    EXPECT_NE(std::find(pids.begin(), pids.end(), *kept.pid()), pids.end());
    EXPECT_NE(std::find(pids.begin(), pids.end(), abandoned_pid), pids.end());
    EXPECT_TRUE(mp::ChildProcess(kids[0]).is_alive());

    mp::sys::write_all(w.get(), "xx", 2);
    mp::detail::Deadline deadline(60s);
    while (!mp::active_children().empty() && !deadline.expired()) std::this_thread::sleep_for(5ms);
    EXPECT_TRUE(mp::active_children().empty());
    EXPECT_EQ(kept.exitcode(), 0);
    EXPECT_EQ(kids[0].exitcode(), 0);
    // The leak checker fails this test if the abandoned child is left as a zombie.
}

TEST_P(ProcessTest, CpuCounts) {
    int online = mp::cpu_count();
    int mine = mp::process_cpu_count();
    EXPECT_GE(online, 1);
    EXPECT_GE(mine, 1);
    EXPECT_LE(mine, online);
    cpu_set_t set;
    CPU_ZERO(&set);
    ASSERT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
    EXPECT_EQ(mine, CPU_COUNT(&set));

    auto p = ctx().Process([] {
        cpu_set_t s;
        CPU_ZERO(&s);
        if (::sched_getaffinity(0, sizeof s, &s) != 0) std::exit(100);
        int first = 0;
        while (!CPU_ISSET(first, &s)) ++first;
        CPU_ZERO(&s);
        CPU_SET(first, &s);
        if (::sched_setaffinity(0, sizeof s, &s) != 0) std::exit(101);
        std::exit(mp::process_cpu_count() == 1 && mp::cpu_count() >= 1 ? 0 : 102);
    });
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(ProcessTest, StartFromFourThreadsAtOnce) {
    Capture err(2);  // the multi-threaded fork warning
    std::vector<std::thread> threads;
    std::vector<std::vector<int>> codes(4);
    std::atomic<int> failures{0};
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            try {
                std::vector<mp::Process> ps;
                for (int i = 0; i < 5; ++i) {
                    ps.push_back(ctx().Process([code = t * 10 + i] { std::exit(code); }));
                    ps.back().start();
                }
                for (auto& p : ps) {
                    p.join();
                    codes[t].push_back(p.exitcode().value_or(-1000));
                }
            } catch (...) {
                ++failures;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
    for (int t = 0; t < 4; ++t)
        EXPECT_EQ(codes[t],
                  (std::vector<int>{t * 10, t * 10 + 1, t * 10 + 2, t * 10 + 3, t * 10 + 4}));
    EXPECT_TRUE(mp::active_children().empty());
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ProcessTest,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

// Asked for the first time after the child was reaped (a fork child's pidfd is opened on first
// use): the sentinel is still a descriptor that is readable.
TEST_P(ProcessTest, SentinelFirstAskedAfterJoinIsReadable) {
    auto p = ctx().Process([] {});
    p.start();
    p.join();
    ASSERT_EQ(p.exitcode(), 0);
    const int s = p.sentinel();
    ASSERT_GE(s, 0);
    EXPECT_TRUE(readable(s, 0ms));
    EXPECT_EQ(p.sentinel(), s);  // the same descriptor, owned by the object
    p.terminate();               // nothing to signal any more, and no error
}

// When the program ignores SIGCHLD the kernel reaps children itself, so a fork child's pid may
// be reused behind our back: signals must still reach the child only (the pidfd is opened at
// start then), and the lost exit code is a clear error, not a wrong number.
TEST(ForkSigchldIgnored, SignalsReachTheChildAndTheLostStatusIsAnError) {
    struct sigaction ign {
    }, old{};
    ign.sa_handler = SIG_IGN;
    ASSERT_EQ(::sigaction(SIGCHLD, &ign, &old), 0);
    auto [r, w] = mp::sys::make_pipe();
    auto p = mp::get_context("fork").Process(
        [](PassFd f) {
        write_str(f.fd, "ready");
        block_forever();
        },
        PassFd{w.get()});
    p.start();
    EXPECT_EQ(read_str(r.get()), "ready");
    p.kill();
    EXPECT_TRUE(readable(p.sentinel(), 30s));    // the pidfd: readable once the child has ended
    EXPECT_THROW(p.join(), mp::ProcessError);    // reaped by the kernel: the code is lost
    p.kill();                                    // after that, signals go nowhere
    EXPECT_TRUE(mp::active_children().empty());  // and the registry lets go of it
    ::sigaction(SIGCHLD, &old, nullptr);
}

// Fork-specific: the warning Python 3.12 gives when forking a multi-threaded process.
TEST(ForkWarning, LoggedOnceWhenMultiThreaded) {
    mp::detail::reset_fork_warning_for_testing();
    auto ctx = mp::get_context("fork");
    std::string single;
    {
        Capture err(2);
        auto p = ctx.Process([] {});
        p.start();
        p.join();
        single = err.finish();
    }
    EXPECT_EQ(count(single, "is multi-threaded"), 0) << single;

    std::string multi;
    {
        mp::test::IdleThread other;
        Capture err(2);
        for (int i = 0; i < 3; ++i) {
            auto p = ctx.Process([] {});
            p.start();
            p.join();
        }
        multi = err.finish();
    }
    EXPECT_EQ(count(multi, "is multi-threaded"), 1) << multi;
    EXPECT_NE(multi.find("use of fork() may lead to deadlocks in the child"), std::string::npos);
}

}  // namespace
