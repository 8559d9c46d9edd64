// Rows: Pipe round trip (8 bytes) and Connection throughput (64 B and 1 MiB messages, one way).
//
// Every implementation uses the same protocol, so the rows compare like with like:
//
//   round trip   parent: send 8 bytes, wait for the 8 bytes echoed, repeat.
//                child:  echo until the stop message (a different length; raw: a marker value).
//   throughput   child:  send `warmup` messages, wait for the parent's go byte, send `iters`.
//                parent: receive the warm-up, send go, start the clock, receive `iters`
//                        messages into one reused buffer (Python: recv_bytes_into), stop.
//                The raw baseline frames nothing: it streams iters * size bytes.
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "harness.hpp"
#include "raw.hpp"

namespace bench {
namespace {

constexpr std::size_t kSmall = 64;
constexpr std::size_t kLarge = std::size_t{1} << 20;

BENCH_REGISTER(add_row({
    .name = "pipe_rtt_8B",
    .what = "Pipe round trip of an 8-byte message between a parent and a child that echoes it",
    .kind = Kind::latency,
    .unit = "us",
    .scale = 1e6,
    .probe_iters = 2000,
    .goal = {"raw", Goal::at_most, 1.15},
}));
BENCH_REGISTER(add_row({
    .name = "conn_throughput_64B",
    .what = "one-way stream of 64-byte messages, child sends, parent receives",
    .kind = Kind::throughput,
    .unit = "msg/s",
    .bytes_per_iter = kSmall,
    .probe_iters = 20000,
    .goal = {},
}));
BENCH_REGISTER(add_row({
    .name = "conn_throughput_1MiB",
    .what = "one-way stream of 1 MiB messages, child sends, parent receives",
    .kind = Kind::throughput,
    .unit = "msg/s",
    .bytes_per_iter = kLarge,
    .probe_iters = 200,
    .goal = {"raw", Goal::at_least, 0.70},
}));

// ---- raw: socketpair, fork, read/write ----

constexpr std::uint64_t kStop = ~std::uint64_t{0};

double raw_pipe_rtt(const Run& run) {
    auto [parent, child] = raw::socket_pair();
    pid_t pid = raw::fork_child([&, &parent = parent, &child = child] {
        parent.close();
        for (;;) {
            std::uint64_t m;
            raw::read_full(child.get(), &m, sizeof m);
            if (m == kStop) return;
            raw::write_all(child.get(), &m, sizeof m);
        }
    });
    child.close();
    auto round_trip = [&, &parent = parent](std::uint64_t i) {
        std::uint64_t back = 0;
        raw::write_all(parent.get(), &i, sizeof i);
        raw::read_full(parent.get(), &back, sizeof back);
        if (back != i) fail("raw round trip: wrong echo");
    };
    for (std::uint64_t i = 0; i < run.warmup; ++i) round_trip(i);
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) round_trip(i);
    double seconds = clock.seconds();
    raw::write_all(parent.get(), &kStop, sizeof kStop);
    raw::wait_child(pid);
    return seconds;
}

double raw_stream(const Run& run, std::size_t size) {
    auto [parent, child] = raw::socket_pair();
    pid_t pid = raw::fork_child([&, &parent = parent, &child = child] {
        parent.close();
        std::vector<char> msg(size, 'x');
        for (std::uint64_t i = 0; i < run.warmup; ++i) raw::write_all(child.get(), msg.data(), size);
        char go;
        raw::read_full(child.get(), &go, 1);
        for (std::uint64_t i = 0; i < run.iters; ++i) raw::write_all(child.get(), msg.data(), size);
    });
    child.close();
    std::vector<char> buf(size);
    auto drain = [&, &parent = parent](std::uint64_t bytes) {
        while (bytes > 0)
            bytes -= raw::read_some(parent.get(), buf.data(), bytes < size ? bytes : size);
    };
    drain(run.warmup * size);
    char go = 'g';
    raw::write_all(parent.get(), &go, 1);
    Stopwatch clock;
    drain(run.iters * size);
    double seconds = clock.seconds();
    raw::wait_child(pid);
    return seconds;
}

double raw_stream_small(const Run& run) { return raw_stream(run, kSmall); }
double raw_stream_large(const Run& run) { return raw_stream(run, kLarge); }

BENCH_REGISTER(add_impl("pipe_rtt_8B", "raw", raw_pipe_rtt));
BENCH_REGISTER(add_impl("conn_throughput_64B", "raw", raw_stream_small));
BENCH_REGISTER(add_impl("conn_throughput_1MiB", "raw", raw_stream_large));

}  // namespace
}  // namespace bench
