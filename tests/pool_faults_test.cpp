// mp::Pool when things go wrong, run once per start method: a worker killed or crashing
// mid-task (exactly its item fails; retries, then quarantine), an initializer that fails, a
// pool destroyed under its results and iterators, Ctrl-C during a blocking map, and frame
// headers that lie about their length. The pool at work is in pool_test.cpp.
#include "multiproc/pool.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <optional>
#include <regex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine_protocol.hpp"
#include "helpers/pool_fixture.hpp"
#include "helpers/sanitizer.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/process.hpp"
#include "multiproc/signals.hpp"
#include "sys/io.hpp"
#include "sys/memfd.hpp"
#include "sys/pidfd.hpp"
#include "sys/socket.hpp"

namespace {

using namespace std::chrono_literals;
using namespace mp::test;  // PoolTest, square, sleep_ms

// --- task functions (plain functions: they travel by identity under every start method) ---

enum How : int { kill9 = 0, segv, abrt, term, exit3 };
struct Doom {
    int x, victim, how;
};
int doom(Doom d) {
    if (d.x == d.victim) {
        switch (d.how) {
            case kill9: ::raise(SIGKILL); break;
            case segv: ::raise(SIGSEGV); break;
            case abrt: std::abort();
            case term: std::terminate();
            case exit3: std::exit(3);
        }
    }
    return d.x * d.x;
}

// Crashes its worker the first time (a marker file remembers), succeeds afterwards.
int crash_once(std::string marker) {
    struct stat st {};
    if (::stat(marker.c_str(), &st) != 0) {
        std::ofstream(marker) << "x";
        ::raise(SIGKILL);
    }
    return 7;
}
int always_crash(int) {
    ::raise(SIGKILL);
    return 0;
}

void init_throws(int) { throw std::runtime_error("initializer exploded"); }
void init_aborts(int) { std::abort(); }

// --- a pool destroyed under its results ------------------------------------------------------

// An iterator read after its Pool is gone: the Pool's destructor terminated the work, so the
// iterator reports mp::BrokenProcessPool (after at most the results already delivered), never a
// crash. `make` builds the iterator from the pool (imap or imap_unordered).
template <class Make>
void expect_broken_after_pool(const mp::test::StartMethodTest& t, mp::PoolOptions o, Make make) {
    static_cast<void>(t);
    using It = decltype(make(std::declval<mp::Pool&>()));
    std::optional<It> it;
    {
        mp::Pool pool(2, o);
        it.emplace(make(pool));
        EXPECT_EQ(it->next(), 9);
    }
    int delivered = 0;
    try {
        while (it->next(5s)) ++delivered;
        ADD_FAILURE() << "the iterator ended normally after its pool was destroyed";
    } catch (const mp::BrokenProcessPool&) {
    }
    EXPECT_LT(delivered, 99);  // a window of one item: at most a few were ahead
}

TEST_P(PoolTest, ImapAfterItsPoolIsDestroyedIsBroken) {
    expect_broken_after_pool(*this, opts(), [](mp::Pool& p) {
        return p.imap(square, std::vector<int>(100, 3), 1, 1);
    });
    expect_broken_after_pool(*this, opts(), [](mp::Pool& p) {
        return p.imap_unordered(square, std::vector<int>(100, 3), 1, 1);
    });
    // The same for results of map_async and apply_async still running when the pool went.
    std::optional<decltype(std::declval<mp::Pool&>().map_async(sleep_ms, std::vector<int>{}))> m;
    std::optional<decltype(std::declval<mp::Pool&>().apply_async(sleep_ms, 0))> a;
    {
        mp::Pool pool(1, opts());
        m.emplace(pool.map_async(sleep_ms, std::vector<int>(20, 100), 1));
        a.emplace(pool.apply_async(sleep_ms, 100));
    }
    EXPECT_THROW(m->get(5s), mp::BrokenProcessPool);
    EXPECT_THROW(a->get(5s), mp::BrokenProcessPool);
}

TEST_P(PoolTest, DestructorFailsPendingResults) {
    std::optional<mp::AsyncResult<int>> r;
    std::optional<mp::AsyncResult<std::vector<int>>> m;
    {
        mp::Pool pool(2, opts());
        r.emplace(pool.apply_async(sleep_ms, 10000));
        m.emplace(pool.map_async(sleep_ms, std::vector<int>{10000, 10000, 10000}, 1));
    }
    try {
        r->get();
        FAIL() << "no exception";
    } catch (const mp::BrokenProcessPool& e) {
        EXPECT_NE(std::string(e.what()).find("terminated"), std::string::npos) << e.what();
    }
    EXPECT_THROW(m->get(), mp::BrokenProcessPool);
}

// --- worker death -------------------------------------------------------------------------------

struct DeathCase {
    How how;
    const char* pattern;
};


TEST_P(PoolTest, WorkerDeathFailsExactlyTheItemItWasRunning) {
    const DeathCase cases[] = {
        {kill9, "worker process [0-9]+ was killed by signal 9 \\(SIGKILL\\)"},
#ifdef MP_TEST_ASAN
        // AddressSanitizer catches SIGSEGV itself, reports, and exits with code 1.
        {segv, "worker process [0-9]+ exited with code 1"},
#else
        {segv, "worker process [0-9]+ was killed by signal 11 \\(SIGSEGV\\)"},
#endif
        {abrt, "worker process [0-9]+ was killed by signal 6 \\(SIGABRT\\)"},
        {term, "worker process [0-9]+ was killed by signal 6 \\(SIGABRT\\)"},
        {exit3, "worker process [0-9]+ exited with code 3"},
    };
    mp::Pool pool(2, opts());
    for (const auto& c : cases) {
        SCOPED_TRACE(c.pattern);
        std::vector<Doom> in;
        for (int i = 0; i < 40; ++i) in.push_back({i, 17, c.how});
        // Chunks of 5: the worker dies in the middle of a chunk; only item 17 may fail.
        auto it = pool.imap(doom, in, 5);
        for (int i = 0; i < 40; ++i) {
            if (i == 17) {
                try {
                    it.next();
                    ADD_FAILURE() << "item 17 did not fail";
                } catch (const mp::BrokenProcessPool& e) {
                    EXPECT_TRUE(std::regex_search(e.what(), std::regex(c.pattern))) << e.what();
                }
            } else {
                EXPECT_EQ(it.next(), i * i);
            }
        }
        EXPECT_EQ(it.next(), std::nullopt);
        // map: the same death surfaces as the map's exception.
        EXPECT_THROW(pool.map(doom, in, 3), mp::BrokenProcessPool);
        EXPECT_EQ(pool.apply(square, 9), 81);  // replaced workers keep serving
        EXPECT_EQ(pool.worker_pids().size(), 2u);
    }
}

TEST_P(PoolTest, RetriesThenQuarantine) {
    auto o = opts();
    o.retries = 2;
    mp::Pool pool(2, o);
    char dir[] = "/tmp/mp_pool_retryXXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const std::string marker = std::string(dir) + "/crashed";
    EXPECT_EQ(pool.apply(crash_once, marker), 7);  // retried on a fresh worker
    ::unlink(marker.c_str());
    ::rmdir(dir);
    try {
        pool.apply(always_crash, 0);
        FAIL() << "no exception";
    } catch (const mp::BrokenProcessPool& e) {
        const std::string w = e.what();
        EXPECT_NE(w.find("quarantined"), std::string::npos) << w;
        EXPECT_NE(w.find("killed 3 worker processes"), std::string::npos) << w;
        EXPECT_NE(w.find("attempt 3"), std::string::npos) << w;
    }
    EXPECT_EQ(pool.apply(square, 4), 16);
}

// --- initializer failure ------------------------------------------------------------------------

TEST_P(PoolTest, InitializerFailureIsAClearErrorNotAHang) {
    {
        auto o = opts();
        o.initializer = mp::Initializer(init_throws, 0);
        mp::Pool pool(2, o);
        try {
            pool.apply(square, 2);
            FAIL() << "no exception";
        } catch (const mp::BrokenProcessPool& e) {
            EXPECT_NE(std::string(e.what()).find("initializer exploded"), std::string::npos)
                << e.what();
        }
        EXPECT_THROW(pool.map(square, std::vector<int>{1, 2}), mp::BrokenProcessPool);
    }
    {
        auto o = opts();
        o.initializer = mp::Initializer(init_aborts, 0);
        mp::Pool pool(1, o);
        try {
            pool.apply(square, 2);
            FAIL() << "no exception";
        } catch (const mp::BrokenProcessPool& e) {
            EXPECT_NE(std::string(e.what()).find("initializer"), std::string::npos) << e.what();
        }
    }
}

// --- Ctrl-C ---------------------------------------------------------------------------------------

void on_sigint(int) {}

// How the program of sigint_child treats SIGINT.
enum SigintMode : int { kDefaultDisposition, kOwnHandler, kGuard };

// Runs a map in a pool; reports the worker pids, then how the map ended.
void sigint_child(mp::Connection out, std::string method, int mode) {
    if (mode == kOwnHandler) {
        struct sigaction sa {};
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGINT, &sa, nullptr);
    }
    std::optional<mp::SigintGuard> guard;
    if (mode == kGuard) guard.emplace();
    mp::PoolOptions o;
    o.context = mp::get_context(method);
    mp::Pool pool(2, o);
    pool.apply(square, 1);  // both workers started
    out.send(pool.worker_pids());
    // 10 s of work, but 1 s under the program's own handler, which must not end it (PEP 475).
    const std::size_t n = mode == kOwnHandler ? 20 : 200;
    try {
        pool.map(sleep_ms, std::vector<int>(n, 100), 1);
        out.send(std::string("finished"));
    } catch (const mp::KeyboardInterrupt&) {
        out.send(std::string("interrupted"));
    } catch (const std::exception& e) {
        out.send(std::string(e.what()));
    }
}

TEST_P(PoolTest, SigintInterruptsABlockingMapOnlyUnderTheGuardAndLeavesNoWorker) {
    for (int mode : {kGuard, kOwnHandler, kDefaultDisposition}) {
        SCOPED_TRACE(mode == kGuard        ? "under mp::SigintGuard"
                     : mode == kOwnHandler ? "with the program's own SIGINT handler"
                                           : "default SIGINT disposition");
        auto [rd, wr] = mp::Pipe(false);
        mp::Process child(mp::get_context("fork"), sigint_child, wr, GetParam(), mode);
        child.start();
        wr.close();
        ASSERT_TRUE(rd.poll(30s));
        auto pids = rd.recv<std::vector<pid_t>>();
        ASSERT_EQ(pids.size(), 2u);
        std::vector<mp::detail::UniqueFd> watch;
        for (pid_t p : pids) watch.push_back(mp::sys::pidfd_open(p));
        std::this_thread::sleep_for(200ms);  // inside the map
        ASSERT_EQ(::kill(*child.pid(), SIGINT), 0);
        child.join(30s);
        ASSERT_TRUE(child.exitcode().has_value());
        if (mode == kDefaultDisposition) {
            EXPECT_EQ(*child.exitcode(), -SIGINT);
        } else {
            EXPECT_EQ(*child.exitcode(), 0);
            ASSERT_TRUE(rd.poll(5s));
            EXPECT_EQ(rd.recv<std::string>(), mode == kGuard ? "interrupted" : "finished");
        }
        for (auto& w : watch)
            EXPECT_TRUE(mp::sys::wait_readable(w.get(), mp::detail::Deadline(10s)))
                << "a worker survived";
    }
}

// --- lengths from a peer ------------------------------------------------------------------------
// A frame header announcing gigabytes costs what really arrives. Each side runs in a child whose
// address space is limited to what it maps plus kHeadroom: a buffer sized by the header alone
// (4 GiB) cannot be allocated there, so the child would fail with std::bad_alloc.

namespace wire = mp::detail::wire;

constexpr std::uint64_t kHeadroom = std::uint64_t{768} << 20;
constexpr std::uint64_t kAnnounced = std::uint64_t{4} << 30;

// In a child: no more address space than is mapped now plus kHeadroom.
void limit_address_space() {
    std::ifstream statm("/proc/self/statm");
    std::uint64_t pages = 0;
    statm >> pages;
    const rlimit r{pages * 4096 + kHeadroom, pages * 4096 + kHeadroom};
    if (::setrlimit(RLIMIT_AS, &r) != 0) std::_Exit(20);
}

void send_raw_frame(int sock, wire::Kind kind, std::uint64_t length,
                    std::span<const std::byte> body, std::span<const int> fds = {}) {
    const wire::FrameHeader h{static_cast<std::uint32_t>(kind),
                              static_cast<std::uint32_t>(fds.size()), length};
    std::vector<std::byte> b(sizeof h + body.size());
    std::memcpy(b.data(), &h, sizeof h);
    if (!body.empty()) std::memcpy(b.data() + sizeof h, body.data(), body.size());
    iovec iov{b.data(), b.size()};
    mp::sys::send_all(sock, &iov, 1, fds);
}

// The worker's end: 0 when the parent went away mid-frame, 2 for a corrupt frame (DecodeError).
void worker_under_limit(mp::Connection c) {
    limit_address_space();
    try {
        wire::worker_main(c, wire::WorkerBoot{1, 0});
    } catch (const mp::DecodeError&) {
        std::_Exit(2);
    }
    std::_Exit(0);
}

TEST_P(PoolTest, WorkerGivenAHugeFrameHeaderAllocatesOnlyWhatArrives) {
    if (mp::test::asan || mp::test::tsan)
        GTEST_SKIP()
            << "the sanitizer's shadow memory needs more address space than RLIMIT_AS leaves";
    for (const auto& [length, code] :
         {std::pair{kAnnounced, 0}, std::pair{wire::max_frame + 1, 2}}) {
        auto [sup, worker_end] = mp::Pipe();
        auto p = start(worker_under_limit, worker_end);
        worker_end.close();
        auto slot = mp::sys::make_memfd("slot", 4096);
        const std::uint64_t no_initializer = 0;
        const int slot_fd = slot.get();
        send_raw_frame(sup.fileno(), wire::Kind::init, sizeof no_initializer,
                       std::as_bytes(std::span(&no_initializer, 1)), std::span(&slot_fd, 1));
        const std::vector<std::byte> some(64, std::byte{1});
        send_raw_frame(sup.fileno(), wire::Kind::tasks, length, some);
        // The rest never comes: end of file for the worker, though a fork child still holds a
        // copy of this end.
        ASSERT_EQ(::shutdown(sup.fileno(), SHUT_WR), 0);
        p.join(60s);
        if (!p.exitcode()) p.kill();
        p.join();
        EXPECT_EQ(p.exitcode(), std::optional<int>(code)) << "announced " << length << " bytes";
    }
}

// A task that answers for its worker with a results header announcing 4 GiB, sends 64 bytes
// of it, and dies.
int announce_huge_results(int) {
    const std::vector<std::byte> some(64, std::byte{1});
    send_raw_frame(wire::worker_socket(), wire::Kind::results, kAnnounced, some);
    std::_Exit(9);
}

// The supervisor's end: 0 when the pool reports the worker's death (and no allocation failed).
void supervisor_under_limit(std::string method) {
    limit_address_space();
    mp::PoolOptions o;
    o.context = mp::get_context(method);
    mp::Pool pool(1, o);
    try {
        (void)pool.apply(announce_huge_results, 1);
    } catch (const mp::BrokenProcessPool& e) {
        std::_Exit(std::string(e.what()).find("exited with code 9") != std::string::npos ? 0 : 3);
    } catch (const std::bad_alloc&) {
        std::_Exit(4);
    }
    std::_Exit(5);
}

TEST_P(PoolTest, SupervisorGivenAHugeFrameHeaderAllocatesOnlyWhatArrives) {
    if (mp::test::asan || mp::test::tsan)
        GTEST_SKIP()
            << "the sanitizer's shadow memory needs more address space than RLIMIT_AS leaves";
    auto p = start(supervisor_under_limit, GetParam());
    join_ok(p);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, PoolTest, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
