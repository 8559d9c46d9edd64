// Rows: Pipe round trip (8 bytes) and Connection throughput (64 B and 1 MiB messages, one way).
//
// Every implementation uses the same protocol, so the rows compare like with like:
//
//   round trip   parent: send 8 bytes, wait for the 8 bytes echoed, repeat.
//                child:  echo until the stop message (a different length; raw: a marker value).
//   throughput   child:  send `warmup` messages, wait for the parent's go byte, send `iters`.
//                parent: receive the warm-up, send go, start the clock, receive `iters`
//                        messages into one reused buffer (Python: recv_bytes_into), stop.
//                The raw baseline frames nothing: the child write()s each message's bytes, the
//                parent takes `size` bytes at a time off the stream with recv(MSG_WAITALL),
//                one system call a message on each side, the least a message can cost.
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "harness.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/context.hpp"
#include "multiproc/process.hpp"
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
        for (std::uint64_t i = 0; i < run.warmup; ++i)
            raw::write_all(child.get(), msg.data(), size);
        char go;
        raw::read_full(child.get(), &go, 1);
        for (std::uint64_t i = 0; i < run.iters; ++i) raw::write_all(child.get(), msg.data(), size);
    });
    child.close();
    std::vector<char> buf(size);
    auto drain = [&, &parent = parent](std::uint64_t messages) {
        for (std::uint64_t i = 0; i < messages; ++i) raw::recv_full(parent.get(), buf.data(), size);
    };
    drain(run.warmup);
    char go = 'g';
    raw::write_all(parent.get(), &go, 1);
    Stopwatch clock;
    drain(run.iters);
    double seconds = clock.seconds();
    raw::wait_child(pid);
    return seconds;
}

double raw_stream_small(const Run& run) { return raw_stream(run, kSmall); }
double raw_stream_large(const Run& run) { return raw_stream(run, kLarge); }

BENCH_REGISTER(add_impl("pipe_rtt_8B", "raw", raw_pipe_rtt));
BENCH_REGISTER(add_impl("conn_throughput_64B", "raw", raw_stream_small));
BENCH_REGISTER(add_impl("conn_throughput_1MiB", "raw", raw_stream_large));

// ---- multiproc: mp::Pipe, a child process, Connection::send_bytes / recv_bytes ----

// The child is an mp::Process with the fork start method, as a Python user starts one with
// multiprocessing.Process. Its start and join are setup, never timed: these rows measure the
// Connection alone.
template <class F>
mp::Process start_child(F body) {
    mp::Process p(mp::get_context("fork"), std::move(body));
    p.start();
    return p;
}

void join_child(mp::Process& p) {
    p.join();
    if (p.exitcode() != 0)
        fail("multiproc child failed with exit code " + std::to_string(*p.exitcode()));
}

double mp_pipe_rtt(const Run& run) {
    auto [parent, child] = mp::Pipe();
    mp::Process echo = start_child([parent = parent, child = child]() mutable {
        parent.close();
        for (;;) {
            std::vector<std::byte> m = child.recv_bytes();
            if (m.size() != sizeof(std::uint64_t)) return;
            child.send_bytes(std::span<const std::byte>(m));
        }
    });
    child.close();
    auto round_trip = [&, &parent = parent](std::uint64_t i) {
        parent.send_bytes(std::as_bytes(std::span(&i, 1)));
        std::vector<std::byte> back = parent.recv_bytes();
        if (back.size() != sizeof i || std::memcmp(back.data(), &i, sizeof i) != 0)
            fail("multiproc round trip: wrong echo");
    };
    for (std::uint64_t i = 0; i < run.warmup; ++i) round_trip(i);
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) round_trip(i);
    double seconds = clock.seconds();
    parent.send_bytes(std::string_view("stop"));
    join_child(echo);
    return seconds;
}

double mp_stream(const Run& run, std::size_t size) {
    auto [parent, child] = mp::Pipe();
    mp::Process sender = start_child([parent = parent, child = child, size, run]() mutable {
        parent.close();
        std::vector<std::byte> msg(size, std::byte{'x'});
        for (std::uint64_t i = 0; i < run.warmup; ++i)
            child.send_bytes(std::span<const std::byte>(msg));
        (void)child.recv_bytes();  // go
        for (std::uint64_t i = 0; i < run.iters; ++i)
            child.send_bytes(std::span<const std::byte>(msg));
    });
    child.close();
    std::vector<std::byte> buf(size);
    auto receive = [&, &parent = parent](std::uint64_t n) {
        for (std::uint64_t i = 0; i < n; ++i)
            if (parent.recv_bytes_into(buf) != size) fail("multiproc stream: short message");
    };
    receive(run.warmup);
    parent.send_bytes(std::string_view("g"));
    Stopwatch clock;
    receive(run.iters);
    double seconds = clock.seconds();
    join_child(sender);
    return seconds;
}

double mp_stream_small(const Run& run) { return mp_stream(run, kSmall); }
double mp_stream_large(const Run& run) { return mp_stream(run, kLarge); }

BENCH_REGISTER(add_impl("pipe_rtt_8B", "multiproc", mp_pipe_rtt));
BENCH_REGISTER(add_impl("conn_throughput_64B", "multiproc", mp_stream_small));
BENCH_REGISTER(add_impl("conn_throughput_1MiB", "multiproc", mp_stream_large));

}  // namespace
}  // namespace bench
