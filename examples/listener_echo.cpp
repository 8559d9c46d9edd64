// Listener and Client: a server process and a client process that find each other by address
// and prove they share a key (Python's multiprocessing.connection Listener / Client).
//
//   ./listener_echo            one program: a Listener here, a Client in a child process
//   ./listener_echo serve ADDR KEY     a server for other programs (Python's Client works too)
//   ./listener_echo connect ADDR KEY   a client of such a server (or of a Python Listener)
//
// ADDR is host:port (TCP), @name (an abstract socket) or a path (a Unix socket).
#include <multiproc/multiproc.hpp>

#include <cstdio>
#include <string>

void client(std::string address, std::string key) {
    mp::Connection c = mp::Client(address, key);
    c.send_bytes("hello from the client");
    std::printf("client got: %s\n", c.recv<std::string>().c_str());
}

int serve(const mp::Address& address, const std::string& key, bool once) {
    mp::Listener listener(address, 16, key);
    std::printf("listening at %s\n", listener.address().to_string().c_str());
    std::fflush(stdout);
    do {
        try {
            mp::Connection c = listener.accept();
            auto msg = c.recv_bytes();
            std::printf("server got: %.*s\n", static_cast<int>(msg.size()),
                        reinterpret_cast<const char*>(msg.data()));
            c.send(std::string("welcome, ") + std::to_string(msg.size()) +
                   "-byte message received");
        } catch (const mp::AuthenticationError& e) {
            std::printf("refused a client: %s\n", e.what());
        }
    } while (!once);
    return 0;
}

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc == 4 && std::string(argv[1]) == "serve") return serve(argv[2], argv[3], false);
    if (argc == 4 && std::string(argv[1]) == "connect") {
        client(argv[2], argv[3]);
        return 0;
    }
    // One program: the key every process of this program inherits, a TCP port the kernel picks.
    const std::string key = mp::current_process().authkey();
    mp::Listener listener(mp::Address::tcp("127.0.0.1", 0), 16, key);
    mp::Process p(client, listener.address().to_string(), key);
    p.start();
    mp::Connection c = listener.accept();
    auto msg = c.recv_bytes();
    std::printf("server got: %.*s\n", static_cast<int>(msg.size()),
                reinterpret_cast<const char*>(msg.data()));
    c.send(std::string("welcome"));
    p.join();
    return *p.exitcode();
}
