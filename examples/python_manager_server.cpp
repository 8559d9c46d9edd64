// A C++ manager server that Python programs use with Python's own multiprocessing.managers:
// it serves a work queue and a result dict; a thread of this program squares each number a
// Python client puts and stores the result where the client reads it
// (examples/python_manager_client.py; docs/managers.md, "Python clients").
//
//   python_manager_server 127.0.0.1:50000 abracadabra
//   python3 examples/python_manager_client.py 127.0.0.1:50000 abracadabra   (another program)
#include <cstdio>
#include <multiproc/manager_python.hpp>
#include <multiproc/multiproc.hpp>
#include <string>
#include <thread>

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s HOST:PORT AUTHKEY\n", argv[0]);
        return 2;
    }
    mp::ManagerServer server(mp::Address::parse(argv[1]), argv[2]);
    mp::PyQueue jobs;    // Python: QueueManager.register('get_queue')
    mp::PyDict results;  // Python: QueueManager.register('get_dict', proxytype=DictProxy)
    server.register_py("get_queue", jobs);
    server.register_py("get_dict", results);
    std::thread worker([&] {
        for (;;) {
            const mp::py::object job = jobs.get();
            if (job.is_none()) break;  // the end, put below
            const std::int64_t n = job.as_int();
            results.set(n, n * n);
        }
    });
    std::printf("serving at %s\n", server.address().to_string().c_str());
    std::fflush(stdout);
    server.serve_forever();  // until a client calls shutdown
    jobs.put(nullptr);
    worker.join();
    std::printf("server stopped\n");
}
