// Rows: mp::Pool against a plain hand-written batch pool ("raw") and Python's
// multiprocessing.Pool (bench/py_bench.py). Every pool has 2 workers started with fork, made
// before the clock starts; only the pool's calls are timed.
//
//   pool_map_1M          throughput of Pool.map over tiny tasks (int square): the timed part
//                        is maps of 1,000,000 ints each (the last one shorter) until `iters`
//                        tasks are done. multiproc: pool.map(square, v) with the default
//                        (adaptive) chunksize. raw: the hand-written pool below, batches of
//                        1024 ints. Python: Pool(2).map(square, list) with its default chunksize.
//   pool_apply_rtt       one apply_async(square, x).get() round trip. raw: one batch of one int
//                        through the hand-written pool.
//   pool_speedup_1ms     tasks of ~1 ms of CPU (a busy loop calibrated at setup), in tasks/s:
//                        multiproc: one pool.map over `iters` of them with 2 workers; serial:
//                        the same calls one after another in this process. multiproc / serial
//                        is the speedup. raw: two forked processes each running half of the
//                        calls with no communication, the ceiling for 2 workers right now
//                        (raw / serial shows how much parallelism the machine grants).
//   pool_imap_unordered  throughput of one imap_unordered(square, v) over `iters` ints, every
//                        result consumed by the caller as it comes. raw: the same batch pool
//                        (it takes the batches back in completion order), then a sum of the
//                        results.
//
// The hand-written pool ("raw"): 2 forked workers, one socketpair each. The parent cuts the
// input into batches of 1024 ints, each sent as one write (a 4-byte count, then the ints); a
// worker reads a batch, squares it and writes it back the same way. The parent keeps two
// batches in flight per worker (so a worker never waits for the parent's round trip), polls
// both sockets, copies each returned batch to its place in the output and sends that worker
// the next batch. Nothing from multiproc; only the calls of bench/raw.hpp and poll.
#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "harness.hpp"
#include "multiproc/context.hpp"
#include "multiproc/pool.hpp"
#include "raw.hpp"
#include "spin.hpp"

namespace bench {
namespace {

constexpr std::size_t kMapSize = 1'000'000;  // items per map call in pool_map_1M
constexpr std::size_t kBatch = 1024;         // the hand-written pool's batch
constexpr std::size_t kInFlight = 2;         // batches in flight per worker (raw)
constexpr int kWorkers = 2;

int square(int x) { return x * x; }

using mp_bench::spin;

// The loop count for ~1 ms: the fastest of several timed trials (the least disturbed by
// other processes), so that every run, serial or pooled, gets nearly the same count.
std::uint64_t calibrate_spin() {
    auto fastest = [](std::uint64_t n, int trials) {
        double best = 1e9;
        for (int t = 0; t < trials; ++t) {
            Stopwatch c;
            static_cast<void>(spin(n));
            best = std::min(best, c.seconds());
        }
        return best;
    };
    std::uint64_t n = 200'000;
    n = static_cast<std::uint64_t>(static_cast<double>(n) * 1e-3 / fastest(n, 10));
    n = static_cast<std::uint64_t>(static_cast<double>(n) * 1e-3 / fastest(n, 20));
    return std::max<std::uint64_t>(n, 1);
}

mp::Pool make_pool() {
    mp::PoolOptions o;
    o.context = mp::get_context("fork");
    return mp::Pool(kWorkers, o);
}

std::vector<int> tiny_inputs(std::size_t n) {
    std::vector<int> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<int>(i & 1023);
    return v;
}

void check_squares(const std::vector<int>& in, const std::vector<int>& out, const char* row) {
    if (out.size() != in.size()) fail(std::string(row) + ": wrong number of results");
    for (std::size_t i = 0; i < in.size(); ++i)
        if (out[i] != in[i] * in[i])
            fail(std::string(row) + ": wrong result at " + std::to_string(i));
}

// ---- the hand-written pool ----

class RawPool {
public:
    RawPool() {
        for (int w = 0; w < kWorkers; ++w) {
            auto ends = raw::socket_pair();
            raw::Fd& parent = ends.first;
            raw::Fd& child = ends.second;
            pid_t pid = raw::fork_child([&] {
                parent.close();
                for (auto& other : fds_) other.close();
                serve(child.get());
            });
            child.close();
            fds_.push_back(std::move(parent));
            pids_.push_back(pid);
        }
        flights_.resize(kWorkers);
    }
    RawPool(const RawPool&) = delete;
    RawPool& operator=(const RawPool&) = delete;
    ~RawPool() {
        if (!pids_.empty()) {
            try {
                stop();
            } catch (...) {
            }
        }
    }

    // out[i] = in[i]^2 through the workers.
    void map(std::span<const int> in, std::span<int> out) {
        std::size_t next = 0, done = 0;
        auto send = [&](int w) {
            const std::size_t n = std::min(kBatch, in.size() - next);
            buf_[0] = static_cast<std::uint32_t>(n);
            std::copy_n(in.data() + next, n, reinterpret_cast<int*>(buf_.data() + 1));
            raw::write_all(fds_[w].get(), buf_.data(), (n + 1) * sizeof(std::uint32_t));
            flights_[w].push_back({next, n});
            next += n;
        };
        for (std::size_t k = 0; k < kInFlight; ++k)
            for (int w = 0; w < kWorkers; ++w)
                if (next < in.size()) send(w);
        while (done < in.size()) {
            std::array<pollfd, kWorkers> p{};
            for (int w = 0; w < kWorkers; ++w)
                p[w] = {flights_[w].empty() ? -1 : fds_[w].get(), POLLIN, 0};
            if (::poll(p.data(), p.size(), -1) == -1) {
                if (errno == EINTR) continue;
                fail_errno("poll");
            }
            for (int w = 0; w < kWorkers; ++w) {
                if (p[w].revents == 0) continue;
                const Flight f = flights_[w].front();
                flights_[w].pop_front();
                std::uint32_t n = 0;
                raw::read_full(fds_[w].get(), &n, sizeof n);
                if (n != f.n) fail("raw pool: a batch came back with the wrong size");
                raw::read_full(fds_[w].get(), out.data() + f.begin, n * sizeof(int));
                done += n;
                if (next < in.size()) send(w);
            }
        }
    }

    // Tells the workers to exit (a batch of 0) and waits for them.
    void stop() {
        const std::uint32_t zero = 0;
        for (auto& fd : fds_) raw::write_all(fd.get(), &zero, sizeof zero);
        auto pids = std::move(pids_);
        pids_.clear();
        for (pid_t pid : pids) raw::wait_child(pid);
    }

private:
    struct Flight {
        std::size_t begin, n;
    };

    static void serve(int fd) {
        std::vector<std::uint32_t> b(kBatch + 1);
        for (;;) {
            raw::read_full(fd, b.data(), sizeof(std::uint32_t));
            const std::uint32_t n = b[0];
            if (n == 0) return;
            if (n > kBatch) fail("raw worker: oversized batch");
            raw::read_full(fd, b.data() + 1, n * sizeof(int));
            int* v = reinterpret_cast<int*>(b.data() + 1);
            for (std::uint32_t i = 0; i < n; ++i) v[i] = v[i] * v[i];
            raw::write_all(fd, b.data(), (n + 1) * sizeof(std::uint32_t));
        }
    }

    std::vector<raw::Fd> fds_;
    std::vector<pid_t> pids_;
    std::vector<std::deque<Flight>> flights_;
    std::array<std::uint32_t, kBatch + 1> buf_{};
};

// ---- pool_map_1M ----

BENCH_REGISTER(
    add_row({.name = "pool_map_1M",
             .what = "Pool(2).map(square, ints) in maps of 1,000,000 tiny tasks, default chunksize",
             .kind = Kind::throughput,
             .unit = "tasks/s",
             .probe_iters = 1'000'000,
             .goal = {"raw", Goal::at_least, 0.80}}));

// The inputs of the maps that make up n tasks: full maps of kMapSize, then one shorter map.
// Built before the clock starts, so that no input is copied in the timed part.
struct MapPlan {
    std::vector<int> full = tiny_inputs(kMapSize);
    std::uint64_t full_maps = 0;
    std::vector<int> tail;

    explicit MapPlan(std::uint64_t n)
        : full_maps(n / kMapSize), tail(tiny_inputs(static_cast<std::size_t>(n % kMapSize))) {}

    // Calls one_map(input) for every map of the plan; returns the last map's result.
    template <class MapFn>
    std::vector<int> run(MapFn&& one_map) const {
        std::vector<int> last;
        for (std::uint64_t i = 0; i < full_maps; ++i) last = one_map(full);
        if (!tail.empty()) last = one_map(tail);
        return last;
    }
    // The input of the last map.
    const std::vector<int>& last_input() const { return tail.empty() ? full : tail; }
};

double mp_map(const Run& run) {
    mp::Pool pool = make_pool();
    const MapPlan warm(run.warmup), plan(run.iters);
    auto map = [&](const std::vector<int>& in) { return pool.map(square, in); };
    check_squares(warm.last_input(), warm.run(map), "pool_map_1M");
    Stopwatch clock;
    const std::vector<int> last = plan.run(map);
    const double seconds = clock.seconds();
    check_squares(plan.last_input(), last, "pool_map_1M");
    return seconds;
}

double raw_map(const Run& run) {
    RawPool pool;
    const MapPlan warm(run.warmup), plan(run.iters);
    auto map = [&](const std::vector<int>& in) {
        std::vector<int> out(in.size());
        pool.map(in, out);
        return out;
    };
    check_squares(warm.last_input(), warm.run(map), "pool_map_1M");
    Stopwatch clock;
    const std::vector<int> last = plan.run(map);
    const double seconds = clock.seconds();
    check_squares(plan.last_input(), last, "pool_map_1M");
    pool.stop();
    return seconds;
}

BENCH_REGISTER(add_impl("pool_map_1M", "multiproc", mp_map));
BENCH_REGISTER(add_impl("pool_map_1M", "raw", raw_map));

// ---- pool_apply_rtt ----

BENCH_REGISTER(add_row({.name = "pool_apply_rtt",
                        .what = "one Pool(2).apply_async(square, x).get() round trip",
                        .kind = Kind::latency,
                        .unit = "us",
                        .scale = 1e6,
                        .probe_iters = 2000,
                        .goal = {"raw", Goal::at_most, 1.30}}));

double mp_apply(const Run& run) {
    mp::Pool pool = make_pool();
    for (std::uint64_t i = 0; i < run.warmup; ++i)
        if (pool.apply_async(square, static_cast<int>(i & 1023)).get() !=
            square(static_cast<int>(i & 1023)))
            fail("pool_apply_rtt: wrong result");
    long long sum = 0;
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i)
        sum += pool.apply_async(square, static_cast<int>(i & 1023)).get();
    const double seconds = clock.seconds();
    if (sum < 0) fail("pool_apply_rtt: wrong results");
    return seconds;
}

double raw_apply(const Run& run) {
    RawPool pool;
    auto once = [&](int x) {
        int r = 0;
        pool.map(std::span<const int>(&x, 1), std::span<int>(&r, 1));
        return r;
    };
    for (std::uint64_t i = 0; i < run.warmup; ++i)
        if (once(static_cast<int>(i & 1023)) != square(static_cast<int>(i & 1023)))
            fail("pool_apply_rtt: wrong result");
    long long sum = 0;
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) sum += once(static_cast<int>(i & 1023));
    const double seconds = clock.seconds();
    if (sum < 0) fail("pool_apply_rtt: wrong results");
    pool.stop();
    return seconds;
}

BENCH_REGISTER(add_impl("pool_apply_rtt", "multiproc", mp_apply));
BENCH_REGISTER(add_impl("pool_apply_rtt", "raw", raw_apply));

// ---- pool_speedup_1ms ----

BENCH_REGISTER(
    add_row({.name = "pool_speedup_1ms",
             .what = "~1 ms CPU-bound tasks: Pool(2).map vs the same calls serially in one process "
                     "(multiproc / serial = speedup)",
             .kind = Kind::throughput,
             .unit = "tasks/s",
             .probe_iters = 100,
             .goal = {"serial", Goal::at_least, 1.9}}));

double mp_speedup(const Run& run) {
    const std::uint64_t n = calibrate_spin();
    mp::Pool pool = make_pool();
    const std::uint64_t expect = spin(n);
    for (std::uint64_t r : pool.map(spin, std::vector<std::uint64_t>(run.warmup, n)))
        if (r != expect) fail("pool_speedup_1ms: wrong result");
    const std::vector<std::uint64_t> in(run.iters, n);
    Stopwatch clock;
    const std::vector<std::uint64_t> out = pool.map(spin, in);
    const double seconds = clock.seconds();
    if (out.size() != in.size() ||
        std::any_of(out.begin(), out.end(), [&](std::uint64_t r) { return r != expect; }))
        fail("pool_speedup_1ms: wrong results");
    return seconds;
}

double serial_speedup(const Run& run) {
    const std::uint64_t n = calibrate_spin();
    const std::uint64_t expect = spin(n);
    for (std::uint64_t i = 0; i < run.warmup; ++i)
        if (spin(n) != expect) fail("pool_speedup_1ms: wrong result");
    std::vector<std::uint64_t> out(run.iters);
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) out[i] = spin(n);
    const double seconds = clock.seconds();
    if (std::any_of(out.begin(), out.end(), [&](std::uint64_t r) { return r != expect; }))
        fail("pool_speedup_1ms: wrong results");
    return seconds;
}

// The ideal two-process split, the ceiling of what 2 workers can reach on this machine right
// now: two forked processes, each running half of the tasks with no communication at all.
// They are forked, calibrated and warmed up before the clock starts (each says so with a ready
// byte), then wait for a go byte; the clock stops when both have written their done byte. multiproc / raw is the pool's efficiency;
// raw / serial is the parallelism the machine grants this session (~2 on 2 free cores).
double raw_speedup(const Run& run) {
    const std::uint64_t n = calibrate_spin();
    const std::uint64_t expect = spin(n);
    auto go = raw::socket_pair();
    auto done = raw::socket_pair();
    std::vector<pid_t> pids;
    for (int w = 0; w < kWorkers; ++w) {
        const std::uint64_t share =
            run.iters / kWorkers + (static_cast<std::uint64_t>(w) < run.iters % kWorkers ? 1 : 0);
        pids.push_back(raw::fork_child([&] {
            go.first.close();
            done.first.close();
            for (std::uint64_t i = 0; i < run.warmup / kWorkers; ++i)
                if (spin(n) != expect) fail("pool_speedup_1ms: wrong result");
            char byte = 2;  // ready
            raw::write_all(done.second.get(), &byte, 1);
            raw::read_full(go.second.get(), &byte, 1);
            bool ok = true;
            for (std::uint64_t i = 0; i < share; ++i) ok = ok && spin(n) == expect;
            byte = ok ? 1 : 0;
            raw::write_all(done.second.get(), &byte, 1);
        }));
    }
    go.second.close();
    done.second.close();
    for (int w = 0; w < kWorkers; ++w) {
        char byte = 0;
        raw::read_full(done.first.get(), &byte, 1);
        if (byte != 2) fail("pool_speedup_1ms: a child was not ready");
    }
    const char bytes[kWorkers] = {};
    Stopwatch clock;
    raw::write_all(go.first.get(), bytes, sizeof bytes);
    bool ok = true;
    for (int w = 0; w < kWorkers; ++w) {
        char byte = 0;
        raw::read_full(done.first.get(), &byte, 1);
        ok = ok && byte == 1;
    }
    const double seconds = clock.seconds();
    for (pid_t pid : pids) raw::wait_child(pid);
    if (!ok) fail("pool_speedup_1ms: wrong results");
    return seconds;
}

BENCH_REGISTER(add_impl("pool_speedup_1ms", "multiproc", mp_speedup));
BENCH_REGISTER(add_impl("pool_speedup_1ms", "raw", raw_speedup));
BENCH_REGISTER(add_impl("pool_speedup_1ms", "serial", serial_speedup));

// ---- pool_imap_unordered ----

BENCH_REGISTER(add_row(
    {.name = "pool_imap_unordered",
     .what = "one Pool(2).imap_unordered(square, ints) over tiny tasks, each result consumed",
     .kind = Kind::throughput,
     .unit = "tasks/s",
     .probe_iters = 200'000,
     .goal = {"raw", Goal::at_least, 0.80}}));

double mp_imap(const Run& run) {
    mp::Pool pool = make_pool();
    auto consume = [&](const std::vector<int>& in) {
        long long sum = 0;
        std::size_t count = 0;
        for (int y : pool.imap_unordered(square, in)) {
            sum += y;
            ++count;
        }
        if (count != in.size()) fail("pool_imap_unordered: results lost");
        return sum;
    };
    const std::vector<int> warm = tiny_inputs(static_cast<std::size_t>(run.warmup));
    static_cast<void>(consume(warm));
    const std::vector<int> in = tiny_inputs(static_cast<std::size_t>(run.iters));
    Stopwatch clock;
    const long long sum = consume(in);
    const double seconds = clock.seconds();
    long long want = 0;
    for (int x : in) want += square(x);
    if (sum != want) fail("pool_imap_unordered: wrong results");
    return seconds;
}

double raw_imap(const Run& run) {
    RawPool pool;
    auto consume = [&](const std::vector<int>& in) {
        std::vector<int> out(in.size());
        pool.map(in, out);
        long long sum = 0;
        for (int y : out) sum += y;
        return sum;
    };
    const std::vector<int> warm = tiny_inputs(static_cast<std::size_t>(run.warmup));
    static_cast<void>(consume(warm));
    const std::vector<int> in = tiny_inputs(static_cast<std::size_t>(run.iters));
    Stopwatch clock;
    const long long sum = consume(in);
    const double seconds = clock.seconds();
    long long want = 0;
    for (int x : in) want += square(x);
    if (sum != want) fail("pool_imap_unordered: wrong results");
    pool.stop();
    return seconds;
}

BENCH_REGISTER(add_impl("pool_imap_unordered", "multiproc", mp_imap));
BENCH_REGISTER(add_impl("pool_imap_unordered", "raw", raw_imap));

}  // namespace
}  // namespace bench
