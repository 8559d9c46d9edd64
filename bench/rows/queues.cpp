// Rows: Queue throughput (64-byte and 1 MiB items, 1 -> 1 and 2 -> 2 processes) and a
// ping-pong latency through two queues.
//
//   throughput   P producer and C consumer children are forked and wait for a go event; the
//                parent starts the clock and sets it. Producers put iters/P items each, then C
//                stop items; a consumer ends after P stop items (FIFO per producer makes that
//                after every real item) and reports. The clock stops when all C reported.
//                Implementations: multiproc (mp::Queue bounded to the capacity the boost queue
//                gets: 1024 small or 16 large items; in the simplequeue_* rows mp::SimpleQueue,
//                unbounded: a producer running ahead makes it grow into fresh pages), boost
//                (Boost.Interprocess message_queue, when its headers are installed), pipe (a raw
//                pipe; each message one write and one read of its size), memcpy (the ceiling:
//                one core copying 64 MiB buffers, counted in items of the row's size).
//                bench/py_bench.py runs the same protocol with Python's Queue (queue_* rows)
//                and SimpleQueue (simplequeue_* rows).
//   ping-pong    parent puts one 8-byte item to q1, the child takes it and puts it to q2, the
//                parent takes it: one iteration. Baselines: futex (two words in shared memory,
//                each side sleeps on FUTEX_WAIT until woken) and spin (each side spins).
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "harness.hpp"
#include "multiproc/queues.hpp"
#include "multiproc/synchronize.hpp"

#if __has_include(<boost/interprocess/ipc/message_queue.hpp>)
#include <boost/interprocess/ipc/message_queue.hpp>
#define QBENCH_HAVE_BOOST 1
#endif

namespace bench {
namespace {

constexpr std::size_t kSmall = 64;
constexpr std::size_t kLarge = std::size_t{1} << 20;
using Small = std::array<char, kSmall>;
using Large = std::vector<std::byte>;

void reg_throughput(const char* name, const char* what, std::size_t bytes, std::uint64_t probe,
                    Goal goal) {
    add_row({.name = name,
             .what = what,
             .kind = Kind::throughput,
             .unit = "msg/s",
             .bytes_per_iter = bytes,
             .probe_iters = probe,
             .goal = std::move(goal)});
}

BENCH_REGISTER((reg_throughput("queue_64B_1to1",
                               "Queue, 64-byte items, 1 producer -> 1 consumer process", kSmall,
                               200000, {"boost", Goal::at_least, 2.0}),
                true));
BENCH_REGISTER((reg_throughput("queue_64B_2to2",
                               "Queue, 64-byte items, 2 producers -> 2 consumer processes", kSmall,
                               200000, {"boost", Goal::at_least, 2.0}),
                true));
BENCH_REGISTER((reg_throughput("queue_1MiB_1to1",
                               "Queue, 1 MiB items, 1 producer -> 1 consumer process", kLarge, 200,
                               {"memcpy", Goal::at_least, 0.5}),
                true));
BENCH_REGISTER((reg_throughput("queue_1MiB_2to2",
                               "Queue, 1 MiB items, 2 producers -> 2 consumer processes", kLarge,
                               200, {"memcpy", Goal::at_least, 0.5}),
                true));
BENCH_REGISTER((reg_throughput("simplequeue_64B_1to1",
                               "SimpleQueue, 64-byte items, 1 producer -> 1 consumer process",
                               kSmall, 200000, {}),
                true));
BENCH_REGISTER((reg_throughput("simplequeue_64B_2to2",
                               "SimpleQueue, 64-byte items, 2 producers -> 2 consumer processes",
                               kSmall, 200000, {}),
                true));
BENCH_REGISTER((reg_throughput("simplequeue_1MiB_1to1",
                               "SimpleQueue, 1 MiB items, 1 producer -> 1 consumer process", kLarge,
                               200, {}),
                true));
BENCH_REGISTER((reg_throughput("simplequeue_1MiB_2to2",
                               "SimpleQueue, 1 MiB items, 2 producers -> 2 consumer processes",
                               kLarge, 200, {}),
                true));
BENCH_REGISTER(
    add_row({.name = "queue_pingpong_8B",
             .what = "one 8-byte item there and back through two queues between two processes",
             .kind = Kind::latency,
             .unit = "us",
             .scale = 1e6,
             .probe_iters = 2000,
             .goal = {"futex", Goal::at_most, 0.5}}));

// Forks a child running f, which must not return normally to the harness.
pid_t fork_child(const std::function<void()>& f) {
    const pid_t pid = ::fork();
    if (pid < 0) fail_errno("fork");
    if (pid == 0) {
        try {
            f();
        } catch (...) {
            ::_exit(1);
        }
        ::_exit(0);
    }
    return pid;
}

void reap(const std::vector<pid_t>& pids) {
    for (pid_t p : pids) {
        int st = 0;
        while (::waitpid(p, &st, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail("a benchmark child failed");
    }
}

// The common protocol; `produce(n)` puts n real items then the stop items, `consume(P)` takes
// until P stop items and returns the real items it took.
template <class Produce, class Consume>
double run_mpmc(int np, int nc, std::uint64_t iters, Produce produce, Consume consume) {
    mp::Event go;
    mp::Queue<std::uint64_t> done;
    std::vector<pid_t> pids;
    for (int c = 0; c < nc; ++c) pids.push_back(fork_child([&] { done.put(consume(np)); }));
    for (int p = 0; p < np; ++p)
        pids.push_back(fork_child([&] {
            go.wait();
            produce(iters / static_cast<std::uint64_t>(np), nc);
        }));
    Stopwatch sw;
    go.set();
    std::uint64_t total = 0;
    for (int c = 0; c < nc; ++c) total += done.get();
    const double s = sw.seconds();
    reap(pids);
    if (total != iters / static_cast<std::uint64_t>(np) * static_cast<std::uint64_t>(np))
        fail("queue benchmark: items lost");
    return s;
}

template <class Item>
Item make_item(std::size_t bytes) {
    if constexpr (std::is_same_v<Item, Small>) {
        Item it{};
        it.fill('x');
        return it;
    } else {
        return Item(bytes, std::byte{7});
    }
}

template <class Item>
bool is_stop(const Item& it) {
    if constexpr (std::is_same_v<Item, Small>) return it[0] == 's';
    else return it.size() == 1;
}

template <class Item>
Item stop_item() {
    if constexpr (std::is_same_v<Item, Small>) {
        Item it{};
        it[0] = 's';
        return it;
    } else {
        return Item(1);
    }
}

template <class Q>
Q make_queue(std::size_t bytes) {
    if constexpr (requires { Q(1); }) return Q(bytes == kSmall ? 1024 : 16);  // Boost's capacity
    else return Q();
}

template <template <class> class Q, class Item>
double mp_queue(const Run& run, int np, int nc, std::size_t bytes) {
    Q<Item> q = make_queue<Q<Item>>(bytes);
    const Item item = make_item<Item>(bytes);
    return run_mpmc(
        np, nc, run.iters,
        [&](std::uint64_t n, int stops) {
        for (std::uint64_t i = 0; i < n; ++i) q.put(item);
        for (int s = 0; s < stops; ++s) q.put(stop_item<Item>());
        },
        [&](int stops) {
        std::uint64_t got = 0;
        for (int seen = 0; seen < stops;) {
            Item it = q.get();
            if (is_stop(it)) ++seen;
            else ++got;
        }
        return got;
    });
}

#ifdef QBENCH_HAVE_BOOST
double boost_queue(const Run& run, int np, int nc, std::size_t bytes) {
    namespace bip = boost::interprocess;
    const std::string name = "mp_bench_q_" + std::to_string(::getpid());
    bip::message_queue::remove(name.c_str());
    bip::message_queue mq(bip::create_only, name.c_str(), bytes == kSmall ? 1024 : 16, bytes);
    std::vector<char> buf(bytes, 'x');
    const double s = run_mpmc(
        np, nc, run.iters,
        [&](std::uint64_t n, int stops) {
        bip::message_queue q(bip::open_only, name.c_str());
        for (std::uint64_t i = 0; i < n; ++i) q.send(buf.data(), bytes, 0);
        for (int k = 0; k < stops; ++k) q.send(buf.data(), 1, 0);
        },
        [&](int stops) {
        bip::message_queue q(bip::open_only, name.c_str());
        std::vector<char> in(bytes);
        std::uint64_t got = 0;
        for (int seen = 0; seen < stops;) {
            bip::message_queue::size_type len = 0;
            unsigned prio = 0;
            q.receive(in.data(), bytes, len, prio);
            if (len == 1) ++seen;
            else ++got;
        }
        return got;
    });
    bip::message_queue::remove(name.c_str());
    return s;
}
#endif

void write_full(int fd, const void* p, std::size_t n) {
    auto* c = static_cast<const char*>(p);
    while (n) {
        const ssize_t w = ::write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail_errno("write");
        }
        c += w;
        n -= static_cast<std::size_t>(w);
    }
}

bool read_full(int fd, void* p, std::size_t n) {
    auto* c = static_cast<char*>(p);
    while (n) {
        const ssize_t r = ::read(fd, c, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            fail_errno("read");
        }
        if (r == 0) return false;
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

// The raw pipe stream: P writers, C readers on one pipe. 64-byte messages are written
// atomically; 1 MiB messages are not (several writers interleave), so each reader just takes
// size-byte pieces; the count of bytes is what is checked.
double pipe_stream(const Run& run, int np, int nc, std::size_t bytes) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) fail_errno("pipe2");
    std::vector<char> buf(bytes, 'x');
    const std::uint64_t per = run.iters / static_cast<std::uint64_t>(np);
    const std::uint64_t total = per * static_cast<std::uint64_t>(np);
    mp::Event go;
    mp::Queue<std::uint64_t> done;
    std::vector<pid_t> pids;
    // Readers share out the items: reader c takes its quota (the last one the remainder).
    for (int c = 0; c < nc; ++c) {
        const std::uint64_t quota = total / static_cast<std::uint64_t>(nc) +
                                    (c == nc - 1 ? total % static_cast<std::uint64_t>(nc) : 0);
        pids.push_back(fork_child([&, quota] {
            ::close(fds[1]);
            std::vector<char> in(bytes);
            for (std::uint64_t i = 0; i < quota; ++i)
                if (!read_full(fds[0], in.data(), bytes)) ::_exit(2);
            done.put(quota);
        }));
    }
    for (int p = 0; p < np; ++p)
        pids.push_back(fork_child([&] {
            ::close(fds[0]);
            go.wait();
            for (std::uint64_t i = 0; i < per; ++i) write_full(fds[1], buf.data(), bytes);
        }));
    ::close(fds[0]);
    ::close(fds[1]);
    Stopwatch sw;
    go.set();
    std::uint64_t got = 0;
    for (int c = 0; c < nc; ++c) got += done.get();
    const double s = sw.seconds();
    reap(pids);
    if (got != total) fail("pipe benchmark: bytes lost");
    return s;
}

// One core copying 64 MiB buffers: the ceiling for moving 1 MiB items, in items of `bytes`.
double memcpy_ceiling(const Run& run, std::size_t bytes) {
    constexpr std::size_t kBuf = std::size_t{64} << 20;
    std::vector<char> a(kBuf, 'a'), b(kBuf, 'b');
    const std::uint64_t per_copy = kBuf / bytes;
    Stopwatch sw;
    for (std::uint64_t done = 0; done < run.iters; done += per_copy) {
        std::memcpy(b.data(), a.data(), kBuf);
        std::swap(a, b);
    }
    const double s = sw.seconds();
    if (a[0] != 'a' && a[0] != 'b') fail("memcpy");
    return s * static_cast<double>(run.iters) /
           static_cast<double>((run.iters + per_copy - 1) / per_copy * per_copy);
}

#define QROW(row, np, nc, bytes, Item) \
    BENCH_REGISTER(add_impl(row, "multiproc", [](const Run& r) { \
        return mp_queue<mp::Queue, Item>(r, np, nc, bytes); \
    })); \
    BENCH_REGISTER(add_impl(row, "pipe", \
                            [](const Run& r) { return pipe_stream(r, np, nc, bytes); })); \
    BENCH_REGISTER(add_impl("simple" row, "multiproc", [](const Run& r) { \
        return mp_queue<mp::SimpleQueue, Item>(r, np, nc, bytes); \
    }));

QROW("queue_64B_1to1", 1, 1, kSmall, Small)
QROW("queue_64B_2to2", 2, 2, kSmall, Small)
QROW("queue_1MiB_1to1", 1, 1, kLarge, Large)
QROW("queue_1MiB_2to2", 2, 2, kLarge, Large)
#undef QROW

#ifdef QBENCH_HAVE_BOOST
BENCH_REGISTER(add_impl("queue_64B_1to1", "boost",
                        [](const Run& r) { return boost_queue(r, 1, 1, kSmall); }));
BENCH_REGISTER(add_impl("queue_64B_2to2", "boost",
                        [](const Run& r) { return boost_queue(r, 2, 2, kSmall); }));
BENCH_REGISTER(add_impl("queue_1MiB_1to1", "boost",
                        [](const Run& r) { return boost_queue(r, 1, 1, kLarge); }));
BENCH_REGISTER(add_impl("queue_1MiB_2to2", "boost",
                        [](const Run& r) { return boost_queue(r, 2, 2, kLarge); }));
#endif
BENCH_REGISTER(add_impl("queue_1MiB_1to1", "memcpy",
                        [](const Run& r) { return memcpy_ceiling(r, kLarge); }));
BENCH_REGISTER(add_impl("queue_1MiB_2to2", "memcpy",
                        [](const Run& r) { return memcpy_ceiling(r, kLarge); }));

// ---- ping-pong ----

double mp_pingpong(const Run& run) {
    mp::Queue<std::uint64_t> there, back;
    const pid_t pid = fork_child([&] {
        for (;;) {
            const std::uint64_t v = there.get();
            back.put(v);
            if (v == ~std::uint64_t{0}) return;
        }
    });
    for (std::uint64_t i = 0; i < run.warmup; ++i) {
        there.put(i);
        (void)back.get();
    }
    Stopwatch sw;
    for (std::uint64_t i = 0; i < run.iters; ++i) {
        there.put(i);
        if (back.get() != i) fail("ping-pong: wrong item");
    }
    const double s = sw.seconds();
    there.put(~std::uint64_t{0});
    (void)back.get();
    reap({pid});
    return s;
}

struct PingWords {
    std::atomic<std::uint32_t> ping{0}, pong{0};
};

PingWords* map_words() {
    void* p = ::mmap(nullptr, sizeof(PingWords), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    if (p == MAP_FAILED) fail_errno("mmap");
    return new (p) PingWords;
}

void fwait(std::atomic<std::uint32_t>& w, std::uint32_t v) {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAIT, v, nullptr, nullptr, 0);
}
void fwake(std::atomic<std::uint32_t>& w) {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

// Each side bumps its word and wakes the other, then sleeps until the other's word moves.
template <bool Spin>
double raw_pingpong(const Run& run) {
    PingWords* w = map_words();
    const std::uint64_t total = run.warmup + run.iters;
    const pid_t pid = fork_child([&] {
        for (std::uint32_t i = 1; i <= total; ++i) {
            while (w->ping.load(std::memory_order_acquire) < i)
                if constexpr (!Spin) fwait(w->ping, i - 1);
            w->pong.store(i, std::memory_order_release);
            if constexpr (!Spin) fwake(w->pong);
        }
    });
    double s = 0;
    Stopwatch* sw = nullptr;
    Stopwatch timer;
    for (std::uint32_t i = 1; i <= total; ++i) {
        if (i == run.warmup + 1) {
            timer = Stopwatch();
            sw = &timer;
        }
        w->ping.store(i, std::memory_order_release);
        if constexpr (!Spin) fwake(w->ping);
        while (w->pong.load(std::memory_order_acquire) < i)
            if constexpr (!Spin) fwait(w->pong, i - 1);
    }
    s = sw ? sw->seconds() : 0;
    reap({pid});
    ::munmap(w, sizeof(PingWords));
    return s;
}

BENCH_REGISTER(add_impl("queue_pingpong_8B", "multiproc", mp_pingpong));
BENCH_REGISTER(add_impl("queue_pingpong_8B", "futex", raw_pingpong<false>));
BENCH_REGISTER(add_impl("queue_pingpong_8B", "spin", raw_pingpong<true>));

}  // namespace
}  // namespace bench
