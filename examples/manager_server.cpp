// The server of Python's "using a remote manager" example, in C++: a manager at a TCP address,
// holding a queue named "jobs" that clients of other programs share (examples/manager_client).
//
//   manager_server 127.0.0.1:50000 abracadabra      (port 0: the kernel picks one; printed)
#include <multiproc/multiproc.hpp>

#include <cstdio>
#include <string>
#include <thread>

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s HOST:PORT AUTHKEY\n", argv[0]);
        return 2;
    }
    mp::ManagerServer server(argv[1], argv[2]);
    std::thread serving([&] { server.serve_forever(); });
    {
        // The shared queue: made and named through the server's own protocol.
        mp::Manager self = mp::Manager::connect(server.address(), std::string(argv[2]));
        self.bind("jobs", self.Queue<std::string>());
    }
    std::printf("serving at %s\n", server.address().to_string().c_str());
    std::fflush(stdout);
    serving.join();  // until a client calls shutdown()
    std::printf("server stopped\n");
}
