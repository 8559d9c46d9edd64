// Row: Listener/Client connect + authenticate (TCP on 127.0.0.1, a 32-byte key, Python's
// handshake in both directions), one connection after another.
//
//   parent: a Listener; accept (with its handshake), read the one-byte hello, close; repeat.
//   child:  Client(address, key) (with its handshake), send one byte, close; repeat.
// The time is the parent's, for `iters` connections after `warmup` untimed ones. Python's row
// (bench/py_bench.py) is the same protocol with multiprocessing.connection. Raw: the kernel's
// share alone, the same connection with plain system calls and no cryptography: accept, then
// the handshake's bytes in the one-way trips multiproc makes (server 63 bytes; client 107, its
// answer and its challenge; server 57, verdict and answer; client 13, its verdict), the
// framed one-byte hello, close.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>
#include <string>

#include "harness.hpp"
#include "multiproc/context.hpp"
#include "multiproc/listener.hpp"
#include "multiproc/process.hpp"
#include "raw.hpp"

namespace bench {
namespace {

BENCH_REGISTER(add_row({
    .name = "listener_connect_auth",
    .what = "Client connects to a TCP Listener and both authenticate (HMAC-SHA256 both ways)",
    .kind = Kind::latency,
    .unit = "us",
    .scale = 1e6,
    .probe_iters = 200,
    .goal = {"python", Goal::at_most, 0.2},
}));

void connect_loop(std::string address, std::string key, std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
        mp::Connection c = mp::Client(address, key);
        c.send_bytes(std::string_view("h"));
    }
}

double mp_connect_auth(const Run& run) {
    const std::string key(32, 'k');
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 64, key);
    mp::Process client(mp::get_context("fork"), connect_loop, l.address().to_string(), key,
                       run.warmup + run.iters);
    client.start();
    auto one = [&] {
        mp::Connection c = l.accept();
        if (c.recv_bytes().size() != 1) fail("listener row: wrong hello");
    };
    for (std::uint64_t i = 0; i < run.warmup; ++i) one();
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) one();
    const double seconds = clock.seconds();
    client.join();
    if (client.exitcode() != 0) fail("listener row: the client failed");
    return seconds;
}

BENCH_REGISTER(add_impl("listener_connect_auth", "multiproc", mp_connect_auth));

void set_nodelay(int fd) {
    const int one = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail_errno("setsockopt");
}

// Reads exactly n bytes (their content is not looked at).
void take(int fd, std::size_t n) {
    char buf[128];
    raw::read_full(fd, buf, n);
}

void give(int fd, std::size_t n) {
    char buf[128];
    std::memset(buf, 'x', n);
    raw::write_all(fd, buf, n);
}

double raw_connect_auth(const Run& run) {
    raw::Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (listener.get() < 0) fail_errno("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listener.get(), 64) != 0 ||
        ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
        fail_errno("bind/listen");
    set_nodelay(listener.get());  // inherited by accepted sockets
    const std::uint64_t n = run.warmup + run.iters;
    const pid_t pid = raw::fork_child([&] {
        for (std::uint64_t i = 0; i < n; ++i) {
            raw::Fd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
            if (::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
                fail_errno("connect");
            set_nodelay(c.get());
            take(c.get(), 63);
            give(c.get(), 107);
            take(c.get(), 57);
            give(c.get(), 13);
            give(c.get(), 5);
        }
    });
    auto one = [&] {
        raw::Fd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (c.get() < 0) fail_errno("accept4");
        give(c.get(), 63);
        take(c.get(), 107);
        give(c.get(), 57);
        take(c.get(), 13);
        take(c.get(), 5);
    };
    for (std::uint64_t i = 0; i < run.warmup; ++i) one();
    Stopwatch clock;
    for (std::uint64_t i = 0; i < run.iters; ++i) one();
    const double seconds = clock.seconds();
    raw::wait_child(pid);
    return seconds;
}

BENCH_REGISTER(add_impl("listener_connect_auth", "raw", raw_connect_auth));

}  // namespace
}  // namespace bench
