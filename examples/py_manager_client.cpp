// A C++ program as the client of a Python manager server (examples/python_manager_server.py,
// Python's own BaseManager): it takes the jobs from the server's queue, computes them on a
// multiproc Pool and stores the results in the server's dict (docs/py_manager.md).
//
//   python3 examples/python_manager_server.py 127.0.0.1:50000 abracadabra   (another program)
//   py_manager_client 127.0.0.1:50000 abracadabra
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <multiproc/multiproc.hpp>
#include <multiproc/py_manager.hpp>
#include <vector>

namespace pm = mp::py_manager;

std::int64_t cube(std::int64_t n) { return n * n * n; }

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s HOST:PORT AUTHKEY\n", argv[0]);
        return 2;
    }
    pm::Client m(mp::Address::parse(argv[1]), argv[2]);
    m.connect();                                 // mp::AuthenticationError on a wrong key
    pm::QueueProxy jobs = m.queue("get_queue");  // Python: m.get_queue()
    pm::DictProxy results = m.dict("get_dict");  // Python: m.get_dict()

    std::vector<std::int64_t> batch;
    try {
        for (;;) batch.push_back(jobs.get<std::int64_t>(std::chrono::milliseconds(200)));
    } catch (const mp::Empty&) {  // Python's queue.Empty: every job taken
    }
    mp::Pool pool(2);
    const std::vector<std::int64_t> cubes = pool.map(cube, batch);
    for (std::size_t i = 0; i < batch.size(); ++i) results.set(batch[i], cubes[i]);

    std::printf("computed %zu jobs; the server's dict holds %zu results, 7 -> %lld\n", batch.size(),
                results.size(), static_cast<long long>(results.get<std::int64_t>(std::int64_t{7})));
    m.shutdown();  // Python: what BaseManager.shutdown sends to a server it started
}
