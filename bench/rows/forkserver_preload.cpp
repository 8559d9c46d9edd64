// Row: a child that needs 200 MB of tables before it can answer, started two ways; the time
// from start() to the child's first answer.
//
//   process_start_200MB_tables
//     multiproc  mp::set_forkserver_preload(build_tables, n): the forkserver builds the tables
//                once (in the untimed warm-up start), and every child it forks inherits them
//                copy-on-write; the child answers at once from them.
//     spawn      mp::get_context("spawn"): a fresh exec of the program, which builds the tables
//                itself (as it must: nothing is inherited) and then answers.
// Each iteration: Process start(), receive the child's answer (timed), then join (untimed).
#include <cstdint>
#include <string>
#include <vector>

#include "harness.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/context.hpp"
#include "multiproc/process.hpp"

namespace bench {
namespace {

constexpr std::size_t kTableBytes = std::size_t{200} << 20;
constexpr std::size_t kEntries = kTableBytes / sizeof(std::uint64_t);
constexpr std::size_t kProbe = 12'345'678;

// The tables: 200 MB of values that take real work to make (a splitmix64 step per entry).
std::vector<std::uint64_t> g_tables;

void build_tables(std::size_t n) {
    g_tables.resize(n);
    std::uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (std::size_t i = 0; i < n; ++i) {
        x += 0x9e3779b97f4a7c15ULL;
        std::uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        g_tables[i] = z ^ (z >> 31);
    }
}

// The child: builds the tables unless it inherited them, then answers with one entry.
void answer(mp::Connection c) {
    if (g_tables.size() != kEntries) build_tables(kEntries);
    c.send(g_tables[kProbe]);
}

std::uint64_t expected() {
    static const std::uint64_t v = [] {
        build_tables(kProbe + 1);
        const std::uint64_t r = g_tables[kProbe];
        g_tables = {};
        return r;
    }();
    return v;
}

double start_to_answer(const Run& run, const mp::Context& ctx) {
    const std::uint64_t want = expected();
    auto once = [&] {
        auto [r, w] = mp::Pipe(false);
        Stopwatch clock;
        mp::Process p(ctx, answer, w);
        p.start();
        const auto got = r.recv<std::uint64_t>();
        const double s = clock.seconds();
        p.join();
        if (got != want || p.exitcode() != 0) fail("the child answered wrong or failed");
        return s;
    };
    // One untimed start at least: it starts the forkserver (which runs the preload).
    for (std::uint64_t i = 0; i < run.warmup + 1; ++i) static_cast<void>(once());
    double total = 0;
    for (std::uint64_t i = 0; i < run.iters; ++i) total += once();
    return total;
}

BENCH_REGISTER(add_row({
    .name = "process_start_200MB_tables",
    .what = "start a child that needs 200 MB of tables, until its first answer: preloaded "
            "forkserver (inherits them) vs spawn (builds them)",
    .kind = Kind::latency,
    .unit = "ms",
    .scale = 1e3,
    .probe_iters = 2,
    .goal = {"spawn", Goal::at_most, 0.25},
}));

double mp_preloaded(const Run& run) {
    mp::set_forkserver_preload(build_tables, kEntries);
    return start_to_answer(run, mp::get_context("forkserver"));
}
double mp_spawn_builds(const Run& run) { return start_to_answer(run, mp::get_context("spawn")); }

BENCH_REGISTER(add_impl("process_start_200MB_tables", "multiproc", mp_preloaded));
BENCH_REGISTER(add_impl("process_start_200MB_tables", "spawn", mp_spawn_builds));

}  // namespace
}  // namespace bench
