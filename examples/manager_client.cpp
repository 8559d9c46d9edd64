// A client of examples/manager_server, from another program: puts to or gets from the shared
// queue "jobs", or stops the server.
//
//   manager_client 127.0.0.1:50000 abracadabra put hello
//   manager_client 127.0.0.1:50000 abracadabra get          (prints "hello")
//   manager_client 127.0.0.1:50000 abracadabra shutdown
#include <multiproc/multiproc.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s HOST:PORT AUTHKEY put TEXT | get | shutdown\n", argv[0]);
        return 2;
    }
    mp::Manager m = mp::Manager::connect(argv[1], std::string(argv[2]));
    const std::string command = argv[3];
    auto jobs = m.lookup<mp::QueueProxy<std::string>>("jobs");
    if (command == "put" && argc > 4) {
        jobs.put(argv[4]);
    } else if (command == "get") {
        std::printf("%s\n", jobs.get().c_str());
    } else if (command == "shutdown") {
        m.shutdown();
    } else {
        std::fprintf(stderr, "unknown command %s\n", command.c_str());
        return 2;
    }
}
