// A program of a user's own, built against the *installed* package with find_package: the
// seed's program of DESIGN.md (a Process, a Pool) under the start method given as argv[1].
#include <multiproc/multiproc.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {

void worker(mp::Connection out, std::string name) { out.send("Hello from " + name); }
int square(int x) { return x * x; }

}  // namespace

int main(int argc, char** argv) {
    mp::init(argc, argv);
    mp::set_start_method(argc > 1 ? argv[1] : "spawn");

    auto [reader, writer] = mp::Pipe(/*duplex=*/false);
    mp::Process p(worker, writer, std::string("process-1"));
    p.start();
    const auto hello = reader.recv<std::string>();
    p.join();

    mp::Pool pool(4);
    const std::vector<int> r = pool.map(square, std::vector<int>{1, 2, 3, 4});
    const int hundred = pool.apply_async(square, 10).get();

    const bool ok = hello == "Hello from process-1" && p.exitcode() == 0 &&
                    r == std::vector<int>{1, 4, 9, 16} && hundred == 100;
    std::printf("consumer (%s): %s; map -> {%d, %d, %d, %d}; apply_async -> %d: %s\n",
                mp::get_start_method().value_or("?").c_str(), hello.c_str(), r[0], r[1], r[2], r[3],
                hundred, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
