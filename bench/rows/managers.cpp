// Row: a manager dict's set + get from a child process (Python's Manager().dict()).
//
//   parent: a Manager (fork) and a dict<int, int>; starts the child, times from the child's
//           "warm" message to its "done" message.
//   child:  `warmup` untimed pairs, "warm", `iters` pairs d[i % 1024] = i; d[i % 1024], "done".
// One iteration is one pair (a set and a get). Python's row (bench/py_bench.py) is the same
// protocol with multiprocessing.Manager.
#include <string>

#include "harness.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/context.hpp"
#include "multiproc/managers.hpp"
#include "multiproc/process.hpp"

namespace bench {
namespace {

BENCH_REGISTER(add_row({
    .name = "manager_dict_setget",
    .what = "a child sets then gets a key of a Manager dict<int, int> (one set + one get a pair)",
    .kind = Kind::throughput,
    .unit = "pair/s",
    .probe_iters = 2000,
    .goal = {"python", Goal::at_least, 20.0},
}));

void dict_loop(mp::DictProxy<int, int> d, mp::Connection report, std::uint64_t warmup,
               std::uint64_t iters) {
    long sum = 0;
    for (std::uint64_t i = 0; i < warmup; ++i) {
        d.set(static_cast<int>(i & 1023), static_cast<int>(i));
        sum += d.get(static_cast<int>(i & 1023));
    }
    report.send_bytes(std::string_view("w"));
    for (std::uint64_t i = 0; i < iters; ++i) {
        d.set(static_cast<int>(i & 1023), static_cast<int>(i));
        sum += d.get(static_cast<int>(i & 1023));
    }
    report.send_bytes(std::string_view(sum >= 0 ? "d" : "x"));
}

double mp_dict_setget(const Run& run) {
    mp::Manager m(mp::get_context("fork"));
    auto d = m.dict<int, int>();
    auto [reader, writer] = mp::Pipe(false);
    mp::Process child(mp::get_context("fork"), dict_loop, d, writer, run.warmup, run.iters);
    child.start();
    writer.close();
    static_cast<void>(reader.recv_bytes());
    Stopwatch clock;
    const auto done = reader.recv_bytes();
    const double seconds = clock.seconds();
    child.join();
    if (child.exitcode() != 0 || done.size() != 1) fail("manager row: the child failed");
    return seconds;
}

BENCH_REGISTER(add_impl("manager_dict_setget", "multiproc", mp_dict_setget));

}  // namespace
}  // namespace bench
