// Row: Listener/Client connect + authenticate (TCP on 127.0.0.1, a 32-byte key, Python's
// handshake in both directions), one connection after another.
//
//   parent: a Listener; accept (with its handshake), read the one-byte hello, close; repeat.
//   child:  Client(address, key) (with its handshake), send one byte, close; repeat.
// The time is the parent's, for `iters` connections after `warmup` untimed ones. Python's row
// (bench/py_bench.py) is the same protocol with multiprocessing.connection.
#include <string>

#include "harness.hpp"
#include "multiproc/context.hpp"
#include "multiproc/listener.hpp"
#include "multiproc/process.hpp"

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

}  // namespace
}  // namespace bench
