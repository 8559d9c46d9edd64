// Row: a Python client (Debian's /usr/bin/python3, Python's own multiprocessing.managers and
// DictProxy) sets then gets a key of a dict a manager server serves, one set + one get a pair.
//
//   multiproc: the server is an mp::ManagerServer in this process (an mp::PyDict registered as
//              'get_dict'); the client is `python3 bench/py_bench.py --dict-client ...`.
//   python:    the same client against a Python BaseManager server (bench/py_bench.py).
// The client runs `warmup` untimed pairs d[i % 1024] = i; d[i % 1024], then `iters` timed ones,
// and prints the seconds of the latter, which are the row's.
#include <cstdio>
#include <string>
#include <thread>

#include "harness.hpp"
#include "multiproc/manager_python.hpp"

namespace bench {
namespace {

BENCH_REGISTER(add_row({
    .name = "manager_py_dict_ops",
    .what = "a Python client's DictProxy set then get against the server (one set + one get a "
            "pair)",
    .kind = Kind::throughput,
    .unit = "pair/s",
    .probe_iters = 1000,
    .goal = {"python", Goal::at_least, 2.0},
}));

double mp_py_dict_ops(const Run& run) {
    const std::string key = "bench";
    mp::ManagerServer server(mp::Address::tcp("127.0.0.1", 0), key);
    mp::PyDict d;
    server.register_py("get_dict", d);
    std::thread serving([&] { server.serve_forever(); });
    const std::string cmd = "/usr/bin/python3 " MULTIPROC_SOURCE_DIR "/bench/py_bench.py "
                            "--dict-client " +
                            server.address().to_string() + " 62656e6368 " +
                            std::to_string(run.warmup) + " " + std::to_string(run.iters);
    double seconds = -1;
    if (FILE* out = ::popen(cmd.c_str(), "r")) {
        if (std::fscanf(out, "%lf", &seconds) != 1) seconds = -1;
        if (::pclose(out) != 0) seconds = -1;
    }
    mp::Manager::connect(server.address(), key).shutdown();
    serving.join();
    if (seconds < 0) fail("manager_py_dict_ops: the Python client failed");
    return seconds;
}

BENCH_REGISTER(add_impl("manager_py_dict_ops", "multiproc", mp_py_dict_ops));

}  // namespace
}  // namespace bench
