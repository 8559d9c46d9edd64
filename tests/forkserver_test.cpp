// What is particular to the forkserver: one clean server forks every child, is restarted when
// it died, serves several threads at once, and takes its daemonic children along when the
// program lets go of it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "forkserver.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/context.hpp"
#include "multiproc/process.hpp"
#include "spawn.hpp"
#include "start_methods_lib.hpp"
#include "sys/io.hpp"
#include "sys/memfd.hpp"
#include "sys/socket.hpp"

namespace {

void exit_with(int code) { std::exit(code); }
void send_ppid(mp::Connection c) { c.send(static_cast<int>(::getppid())); }
void wait_for_go(mp::Connection c) {
    c.send(1);
    static_cast<void>(c.recv<int>());
}
void send_back(std::string s, mp::Connection c) { c.send(s); }
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

// ---- hostile requests ----------------------------------------------------------------------
// Whatever arrives on the control socket, the server refuses what is malformed (answering
// -EBADMSG where it can), allocates nothing for lengths it has not received, and serves on.

std::vector<std::byte> request(std::uint32_t kind, std::uint64_t length,
                               std::span<const std::byte> body) {
    mp::detail::ForkRequestHead h{kind, 0, length};
    std::vector<std::byte> m(sizeof h + body.size());
    std::memcpy(m.data(), &h, sizeof h);
    if (!body.empty()) std::memcpy(m.data() + sizeof h, body.data(), body.size());
    return m;
}

std::vector<std::byte> garbage(std::size_t n) {
    std::vector<std::byte> g(n);
    for (std::size_t i = 0; i < n; ++i) g[i] = static_cast<std::byte>((i * 167 + 13) & 0xff);
    return g;
}

// Sends msg with a fresh reply socket (then `extra` descriptors) and returns the server's
// answer (nullopt when it closed the reply socket without one).
std::optional<std::int32_t> hostile(const std::vector<std::byte>& msg,
                                    std::vector<int> extra = {}) {
    auto reply = mp::sys::make_socketpair();
    extra.insert(extra.begin(), reply.write.get());
    mp::detail::forkserver_send_raw(msg, extra);
    reply.write.reset();
    if (!mp::sys::wait_readable(reply.read.get(),
                                mp::detail::Deadline(mp::Timeout(std::chrono::seconds(30)))))
        return std::nullopt;
    std::int32_t v = 0;
    std::vector<mp::detail::UniqueFd> fds;
    if (mp::sys::recv_some(reply.read.get(), &v, sizeof v, fds) != sizeof v) return std::nullopt;
    return v;
}

TEST_F(ForkServer, MalformedRequestsAreRefusedAndTheServerServesOn) {
    auto p = ctx.Process(&exit_with, 3);
    p.start();
    p.join();
    const pid_t server = mp::detail::forkserver_pid();
    ASSERT_GT(server, 0);

    const auto junk = garbage(1000);
    mp::CurrentProcess::Info who;
    who.name = "hostile";
    const auto three_fds = mp::detail::encode_bootstrap(who, {}, 3);  // announces 3, brings none
    auto empty_memfd = mp::sys::make_memfd("hostile", 0);
    struct Case {
        const char* name;
        std::vector<std::byte> msg;
        std::vector<int> extra;
    };
    const std::uint64_t huge = std::uint64_t{1} << 40;
    const Case cases[] = {
        {"an old-style 8-byte length", std::vector<std::byte>(garbage(8)), {}},
        {"inline, length 2^40", request(mp::detail::kInlineRequest, huge, {}), {}},
        {"inline, length 2 GiB - 1, 1000 bytes",
         request(mp::detail::kInlineRequest, (std::uint64_t{1} << 31) - 1, junk),
         {}},
        {"inline, garbage record", request(mp::detail::kInlineRequest, junk.size(), junk), {}},
        {"memfd, length 2^40", request(mp::detail::kMemfdRequest, huge, {}), {empty_memfd.get()}},
        {"memfd, empty file announced as 1 GiB",
         request(mp::detail::kMemfdRequest, std::uint64_t{1} << 30, {}),
         {empty_memfd.get()}},
        {"memfd kind without the memfd", request(mp::detail::kMemfdRequest, 100, {}), {}},
        {"unknown kind", request(7, junk.size(), junk), {}},
        {"descriptors missing",
         request(mp::detail::kInlineRequest, three_fds.size(), three_fds),
         {}},
        {"longer than any request message", garbage(100'000), {}},
        {"empty message", {}, {}},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(hostile(c.msg, c.extra), std::optional<std::int32_t>(-EBADMSG)) << c.name;
        EXPECT_EQ(mp::detail::forkserver_pid(), server) << c.name;
    }
    // Garbage without a reply socket: nothing to answer on, nothing to die of.
    mp::detail::forkserver_send_raw(junk, {});
    mp::detail::forkserver_send_raw(request(mp::detail::kInlineRequest, huge, {}), {});

    // Normal starts, served by the same server, small and big (its record in a memfd).
    auto q = ctx.Process(&exit_with, 4);
    q.start();
    q.join();
    EXPECT_EQ(q.exitcode(), 4);
    auto [a, b] = mp::Pipe();
    const std::string big(200'000, 'x');
    auto r = ctx.Process(&send_back, big, b);
    r.start();
    EXPECT_EQ(a.recv<std::string>(), big);
    r.join();
    EXPECT_EQ(r.exitcode(), 0);
    EXPECT_EQ(mp::detail::forkserver_pid(), server);
}

TEST_F(ForkServer, StopWithoutServerIsHarmless) {
    mp::detail::stop_forkserver();
    EXPECT_EQ(mp::detail::forkserver_pid(), 0);
}

}  // namespace
