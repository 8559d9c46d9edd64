// Bounded soak and load tests (ctest label "soak": `ctest --preset soak`, run by .ci/run after
// the suite, not part of the default test presets). Each prints its figures; pass or fail
// never depends on a time, only on every result being right and on descriptors and memory
// staying flat. The whole binary runs in about 1.5 minutes on a loaded 2-core machine (the
// queue soak is 60 s of it).
//
// Start methods rotate where the method changes what is exercised: 10,000 sequential starts
// under fork and under forkserver (a request to the server per child), 2,000 under spawn (an
// exec of this whole binary per child, about 10 times slower); the million-task runs use the
// default method (fork) for Pool.map and spawn for the executor; the queue soak runs its 16
// processes under forkserver.
//
// The Listener soak: 100 client processes (forkserver) connect at once to one authenticated
// TCP Listener and make 200 round trips each, while 20 more clients present a wrong key.
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "multiproc/context.hpp"
#include "multiproc/futures.hpp"
#include "multiproc/listener.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/process.hpp"
#include "multiproc/queues.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::uint64_t twice_plus_one(std::uint64_t x) { return 2 * x + 1; }
void nothing() {}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Open descriptors of this process (the directory's own descriptor not counted).
int open_fds() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return -1;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n - 1;
}

// Resident set size of this process, in KiB (VmRSS of /proc/self/status).
long rss_kib() {
    std::ifstream f("/proc/self/status");
    std::string key;
    while (f >> key) {
        if (key == "VmRSS:") {
            long kib = 0;
            f >> kib;
            return kib;
        }
        f.ignore(1 << 12, '\n');
    }
    return -1;
}

// 1,000,000 tasks of a few nanoseconds each: the cost is all in the engine (batching,
// framing, scheduling), which must neither lose nor reorder an item.
constexpr std::uint64_t kTinyTasks = 1'000'000;

std::vector<std::uint64_t> tiny_inputs() {
    std::vector<std::uint64_t> in(kTinyTasks);
    for (std::uint64_t i = 0; i < kTinyTasks; ++i) in[i] = i * 7919 % kTinyTasks;
    return in;
}

TEST(Soak, MillionTinyTasksThroughPoolMap) {
    const auto in = tiny_inputs();
    mp::Pool pool(2);
    const auto t0 = Clock::now();
    const auto out = pool.map(twice_plus_one, in);
    const double s = seconds_since(t0);
    ASSERT_EQ(out.size(), in.size());
    std::uint64_t wrong = 0;
    for (std::uint64_t i = 0; i < kTinyTasks; ++i) wrong += out[i] != 2 * in[i] + 1;
    EXPECT_EQ(wrong, 0u);
    std::printf("Pool.map (%s, 2 workers): %llu tasks in %.2f s, %.0f tasks/s\n",
                mp::get_start_method()->c_str(), static_cast<unsigned long long>(kTinyTasks), s,
                static_cast<double>(kTinyTasks) / s);
}

TEST(Soak, MillionTinyTasksThroughExecutorMap) {
    const auto in = tiny_inputs();
    mp::ExecutorOptions spawn;
    spawn.context = mp::get_context("spawn");
    mp::ProcessPoolExecutor ex(2, spawn);
    const auto t0 = Clock::now();
    std::uint64_t n = 0, wrong = 0;
    for (std::uint64_t r : ex.map(twice_plus_one, in)) {
        wrong += n >= kTinyTasks || r != 2 * in[n] + 1;
        ++n;
    }
    const double s = seconds_since(t0);
    EXPECT_EQ(n, kTinyTasks);
    EXPECT_EQ(wrong, 0u);
    std::printf("ProcessPoolExecutor.map (spawn, 2 workers): %llu tasks in %.2f s, %.0f tasks/s\n",
                static_cast<unsigned long long>(n), s, static_cast<double>(n) / s);
}

// Starts and joins `n` processes one after another under `method` and checks that nothing
// accumulates: the same descriptors before and after, and RSS grown by at most 16 MiB (a
// generous bound: what a leak of a page per child, or of a pidfd, would exceed by far).
void start_join_flat(const char* method, int n) {
    auto ctx = mp::get_context(method);
    auto one = [&] {
        auto p = ctx.Process(nothing);
        p.start();
        p.join();
        ASSERT_EQ(p.exitcode(), std::optional<int>(0));
    };
    // Warm up first: lazy one-time state (the forkserver, the reaper, allocator arenas) is not
    // a leak.
    for (int i = 0; i < 50; ++i) one();
    const int fds0 = open_fds();
    const long rss0 = rss_kib();
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
        one();
        if (::testing::Test::HasFatalFailure()) return;
    }
    const double s = seconds_since(t0);
    const int fds1 = open_fds();
    const long rss1 = rss_kib();
    std::printf("%d processes (%s) started and joined one after another in %.2f s (%.0f/s): "
                "fds %d -> %d, RSS %ld -> %ld KiB\n",
                n, method, s, n / s, fds0, fds1, rss0, rss1);
    EXPECT_EQ(fds1, fds0);
    EXPECT_LT(rss1 - rss0, 16 * 1024);
}

TEST(Soak, TenThousandProcessesUnderFork) { start_join_flat("fork", 10'000); }
TEST(Soak, TenThousandProcessesUnderForkserver) { start_join_flat("forkserver", 10'000); }
// An exec of this binary per child: 2,000 of them take 15 s or more here.
TEST(Soak, TwoThousandProcessesUnderSpawn) { start_join_flat("spawn", 2'000); }

// --- 8 producers and 8 consumers on one queue for 60 s --------------------------------------

constexpr int kProducers = 8;
constexpr int kConsumers = 8;
constexpr std::uint64_t kStop = ~std::uint64_t{0};

// Item i of producer p is p << 40 | i: unique, and each producer's items come in order.
// Sends {p, how many} when its time is up.
void produce_for(mp::Queue<std::uint64_t> q, mp::Queue<std::vector<std::uint64_t>> counts,
                 std::uint64_t p, std::int64_t ms) {
    const auto end = Clock::now() + std::chrono::milliseconds(ms);
    std::uint64_t i = 0;
    while (Clock::now() < end) q.put(p << 40 | i++);
    counts.put({p, i});
}

// What a consumer saw of one producer: how many items, the sums of their indices and of their
// squares (mod 2^64), and how many came out of that producer's order.
struct Tally {
    std::uint64_t count = 0, sum = 0, sum_sq = 0, out_of_order = 0, last = 0;
};
constexpr std::size_t kTallyWords = 4;  // what a consumer sends of a Tally (not `last`)

// Takes items until the stop value, then sends its tallies (kTallyWords per producer).
void consume_tally(mp::Queue<std::uint64_t> q, mp::Queue<std::vector<std::uint64_t>> results) {
    std::vector<Tally> t(kProducers);
    for (;;) {
        const std::uint64_t v = q.get();
        if (v == kStop) break;
        const std::uint64_t p = v >> 40, i = v & ((std::uint64_t{1} << 40) - 1);
        if (p >= kProducers) std::_Exit(7);
        Tally& a = t[p];
        if (a.count > 0 && i <= a.last) ++a.out_of_order;
        a.last = i;
        ++a.count;
        a.sum += i;
        a.sum_sq += i * i;
    }
    std::vector<std::uint64_t> flat;
    for (const auto& a : t) flat.insert(flat.end(), {a.count, a.sum, a.sum_sq, a.out_of_order});
    results.put(flat);
}

TEST(Soak, EightProducersEightConsumersOneQueueForAMinute) {
    auto ctx = mp::get_context("forkserver");
    mp::Queue<std::uint64_t> q(4096);  // bounded: producers block too, not only consumers
    mp::Queue<std::vector<std::uint64_t>> counts, results;
    std::vector<mp::Process> procs;
    const auto t0 = Clock::now();
    for (int c = 0; c < kConsumers; ++c) procs.push_back(ctx.Process(consume_tally, q, results));
    for (int p = 0; p < kProducers; ++p)
        procs.push_back(ctx.Process(produce_for, q, counts, static_cast<std::uint64_t>(p),
                                    std::int64_t{60'000}));
    for (auto& p : procs) p.start();
    std::vector<std::uint64_t> produced(kProducers);
    for (int p = 0; p < kProducers; ++p) {
        const auto c = counts.get(120s);
        ASSERT_EQ(c.size(), 2u);
        ASSERT_LT(c[0], std::uint64_t{kProducers});
        produced[c[0]] = c[1];
    }
    for (int c = 0; c < kConsumers; ++c) q.put(kStop);
    std::vector<Tally> total(kProducers);
    for (int c = 0; c < kConsumers; ++c) {
        const auto flat = results.get(60s);
        ASSERT_EQ(flat.size(), kTallyWords * kProducers);
        for (std::size_t p = 0; p < kProducers; ++p) {
            const std::uint64_t* w = flat.data() + kTallyWords * p;
            total[p].count += w[0];
            total[p].sum += w[1];
            total[p].sum_sq += w[2];
            total[p].out_of_order += w[3];
        }
    }
    for (auto& p : procs) {
        p.join(60s);
        EXPECT_EQ(p.exitcode(), std::optional<int>(0));
    }
    const double s = seconds_since(t0);
    std::uint64_t items = 0;
    for (std::size_t p = 0; p < kProducers; ++p) {
        // Every index 0..n-1 exactly once: the count, the sum and the sum of squares all match
        // (a lost item and a duplicate cannot keep all three), and no consumer saw one
        // producer's items out of order.
        const std::uint64_t n = produced[p];
        std::uint64_t sum = 0, sum_sq = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
            sum += i;
            sum_sq += i * i;
        }
        EXPECT_EQ(total[p].count, n) << "producer " << p;
        EXPECT_EQ(total[p].sum, sum) << "producer " << p;
        EXPECT_EQ(total[p].sum_sq, sum_sq) << "producer " << p;
        EXPECT_EQ(total[p].out_of_order, 0u) << "producer " << p;
        items += n;
    }
    EXPECT_TRUE(q.empty());
    std::printf(
        "Queue (forkserver, maxsize 4096): %d producers, %d consumers, %llu items in %.1f s "
        "(%.0f items/s), every item exactly once\n",
        kProducers, kConsumers, static_cast<unsigned long long>(items), s,
        static_cast<double>(items) / s);
}

// A client: `rounds` round trips of a growing string; exits 0 when every echo was right.
void soak_client(std::string address, std::string key, int id, int rounds) {
    mp::Connection c = mp::Client(address, key);
    for (int i = 0; i < rounds; ++i) {
        const std::string m = std::to_string(id) + ":" + std::to_string(i) +
                              std::string(static_cast<std::size_t>(i), 'x');
        c.send(m);
        if (c.recv<std::string>() != m) std::exit(3);
    }
}

// A client with the wrong key: exits 0 when it was refused.
void refused_client(std::string address) {
    try {
        static_cast<void>(mp::Client(address, "not the key"));
    } catch (const mp::AuthenticationError&) {
        std::exit(0);
    }
    std::exit(4);
}

TEST(Soak, HundredConcurrentClientsOnOneListener) {
    constexpr int kClients = 100, kRefused = 20, kRounds = 200;
    const std::string key = "soak key";
    auto ctx = mp::get_context("forkserver");
    {
        auto warm = ctx.Process(nothing);  // the forkserver's control socket is not a leak
        warm.start();
        warm.join();
    }
    const int fds0 = open_fds();
    const auto t0 = Clock::now();
    {
        mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 256, key);
        std::vector<mp::Process> procs;
        for (int i = 0; i < kClients + kRefused; ++i) {
            procs.push_back(i % 6 == 5 && i / 6 < kRefused
                                ? ctx.Process(refused_client, l.address().to_string())
                                : ctx.Process(soak_client, l.address().to_string(), key, i,
                                              kRounds));
            procs.back().start();
        }
        std::vector<mp::Connection> conns;
        int accepted = 0, refused = 0;
        std::uint64_t echoed = 0;
        while (accepted + refused < kClients + kRefused || !conns.empty()) {
            std::vector<mp::Waitable> ws;
            if (accepted + refused < kClients + kRefused) ws.emplace_back(l.fileno());
            for (auto& c : conns) ws.emplace_back(c);
            const auto ready =
                mp::wait(std::span<const mp::Waitable>(ws), std::chrono::seconds(60));
            ASSERT_FALSE(ready.empty()) << "nothing happened for 60 s";
            const std::size_t first_conn = accepted + refused < kClients + kRefused ? 1 : 0;
            std::vector<std::size_t> gone;
            for (std::size_t r : ready) {
                if (r < first_conn) {
                    try {
                        conns.push_back(l.accept());
                        ++accepted;
                    } catch (const mp::AuthenticationError&) {
                        ++refused;
                    }
                    continue;
                }
                mp::Connection& c = conns[r - first_conn];
                try {
                    c.send(c.recv<std::string>());
                    ++echoed;
                } catch (const mp::EOFError&) {
                    gone.push_back(r - first_conn);
                }
            }
            for (auto it = gone.rbegin(); it != gone.rend(); ++it)
                conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(*it));
        }
        for (auto& p : procs) {
            p.join(std::chrono::seconds(60));
            EXPECT_EQ(p.exitcode(), std::optional<int>(0));
        }
        EXPECT_EQ(accepted, kClients);
        EXPECT_EQ(refused, kRefused);
        EXPECT_EQ(echoed, std::uint64_t{kClients} * kRounds);
        std::printf(
            "Listener: %d clients x %d round trips and %d refused clients in %.2f s (%.0f round trips/s)\n",
            kClients, kRounds, kRefused, seconds_since(t0),
            static_cast<double>(echoed) / seconds_since(t0));
    }
    EXPECT_EQ(open_fds(), fds0);
}

}  // namespace
