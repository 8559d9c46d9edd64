// Rows: mp::pickle against CPython's C pickler (_pickle, through pickle.dumps/pickle.loads in
// bench/py_bench.py) on the same data, at the default protocol (4) on both sides:
//
//   pickle_dumps_list_1M     encode a list of the ints 0 .. 999,999
//   pickle_loads_list_1M     decode it (C++: into std::vector<std::int64_t>; "py_object": into
//                            a dynamic mp::py::object, as Python builds objects)
//   pickle_dumps_dict_100k   encode a dict of 100,000 str keys ("k0" ..) to floats (i * 0.5)
//   pickle_loads_dict_100k   decode it (C++: into std::unordered_map<std::string, double>;
//                            "py_object": into a dynamic mp::py::object)
//
// One iteration is one whole dumps or loads; the data (and, for loads, the pickle each side
// wrote itself) is made before the clock starts. Each side decodes its own pickle: CPython's
// memoizes every str key (one MEMOIZE opcode more per key than mp::pickle writes).
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "harness.hpp"
#include "multiproc/pickle.hpp"

namespace bench {
namespace {

constexpr std::int64_t kInts = 1'000'000;
constexpr std::int64_t kKeys = 100'000;

void add(const char* name, const char* what) {
    add_row({
        .name = name,
        .what = what,
        .kind = Kind::latency,
        .unit = "ms",
        .scale = 1e3,
        .probe_iters = 5,
        .goal = {"python", Goal::at_most, 1.0},
    });
}

BENCH_REGISTER((add("pickle_dumps_list_1M", "pickle.dumps of a list of 1M ints (protocol 4)"),
                true));
BENCH_REGISTER((add("pickle_loads_list_1M", "pickle.loads of a list of 1M ints (protocol 4)"),
                true));
BENCH_REGISTER((add("pickle_dumps_dict_100k",
                    "pickle.dumps of a dict of 100k str -> float (protocol 4)"),
                true));
BENCH_REGISTER((add("pickle_loads_dict_100k",
                    "pickle.loads of a dict of 100k str -> float (protocol 4)"),
                true));

std::vector<std::int64_t> ints() {
    std::vector<std::int64_t> v(kInts);
    for (std::int64_t i = 0; i < kInts; ++i) v[static_cast<std::size_t>(i)] = i;
    return v;
}

std::unordered_map<std::string, double> dict() {
    std::unordered_map<std::string, double> d;
    for (std::int64_t i = 0; i < kKeys; ++i) d.emplace("k" + std::to_string(i), 0.5 * i);
    return d;
}

// Times run.iters calls of once() after run.warmup untimed ones; `sink` keeps results alive.
template <class F>
double timed(const Run& run, F once) {
    std::size_t sink = 0;
    for (std::uint64_t i = 0; i < run.warmup; ++i) sink += once();
    Stopwatch sw;
    for (std::uint64_t i = 0; i < run.iters; ++i) sink += once();
    const double s = sw.seconds();
    if (sink == 0) fail("pickle rows: nothing was encoded or decoded");
    return s;
}

double dumps_list(const Run& run) {
    const auto v = ints();
    return timed(run, [&] { return mp::pickle::dumps(v).size(); });
}

double loads_list(const Run& run) {
    const auto bytes = mp::pickle::dumps(ints());
    return timed(run, [&] { return mp::pickle::loads<std::vector<std::int64_t>>(bytes).size(); });
}

double loads_list_object(const Run& run) {
    const auto bytes = mp::pickle::dumps(ints());
    return timed(run, [&] { return mp::pickle::loads(bytes).as_sequence().size(); });
}

double dumps_dict(const Run& run) {
    const auto d = dict();
    return timed(run, [&] { return mp::pickle::dumps(d).size(); });
}

double loads_dict(const Run& run) {
    const auto bytes = mp::pickle::dumps(dict());
    return timed(run, [&] {
        return mp::pickle::loads<std::unordered_map<std::string, double>>(bytes).size();
    });
}

double loads_dict_object(const Run& run) {
    const auto bytes = mp::pickle::dumps(dict());
    return timed(run, [&] { return mp::pickle::loads(bytes).as_dict().size(); });
}

BENCH_REGISTER(add_impl("pickle_dumps_list_1M", "multiproc", dumps_list));
BENCH_REGISTER(add_impl("pickle_loads_list_1M", "multiproc", loads_list));
BENCH_REGISTER(add_impl("pickle_loads_list_1M", "py_object", loads_list_object));
BENCH_REGISTER(add_impl("pickle_dumps_dict_100k", "multiproc", dumps_dict));
BENCH_REGISTER(add_impl("pickle_loads_dict_100k", "multiproc", loads_dict));
BENCH_REGISTER(add_impl("pickle_loads_dict_100k", "py_object", loads_dict_object));

}  // namespace
}  // namespace bench
