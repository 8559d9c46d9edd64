// The seed's examples, in C++: the program of DESIGN.md ("the contract every release must keep
// compiling and running"), as written there, plus prints of its results.
// Usage: seed [spawn|fork|forkserver]   (default spawn, as in the seed)
//
// Python:
//     def worker(name): print(f"Hello from {name}")
//     def square(x): return x * x
//     if __name__ == "__main__":
//         mp.set_start_method("spawn")
//         p = mp.Process(target=worker, args=("process-1",)); p.start(); p.join()
//         with mp.Pool(4) as pool:
//             r = pool.map(square, [1, 2, 3, 4])
//             a = pool.apply_async(square, (10,))
//             hundred = a.get()
#include <cstdio>
#include <multiproc/multiproc.hpp>
#include <string>
#include <vector>

void worker(std::string name) { std::printf("Hello from %s\n", name.c_str()); }
int square(int x) { return x * x; }

int main(int argc, char** argv) {
    mp::init(argc, argv);  // the `if __name__ == "__main__"` guard: in a spawned
                           // child it runs the child's work and exits; else returns
    const char* method = argc > 1 ? argv[1] : "spawn";
    mp::set_start_method(method);  // optional, once, before use (as in Python); also
                                   // "fork", "forkserver"; or mp::get_context("spawn")
    std::printf("start method: %s\n", method);
    std::fflush(stdout);  // the child's output must not overtake this line

    mp::Process p(worker, std::string("process-1"));
    p.start();
    p.join();  // p.exitcode() == 0
    std::printf("exitcode: %d\n", p.exitcode().value_or(-1));

    mp::Pool pool(4);
    std::vector<int> r = pool.map(square, std::vector<int>{1, 2, 3, 4});  // {1, 4, 9, 16}
    auto a = pool.apply_async(square, 10);
    int hundred = a.get();  // an exception thrown in the worker is rethrown here

    std::printf("map: {");
    for (std::size_t i = 0; i < r.size(); ++i) std::printf("%s%d", i ? ", " : "", r[i]);
    std::printf("}\napply_async: %d\n", hundred);
    const bool ok = p.exitcode() == 0 && r == std::vector<int>{1, 4, 9, 16} && hundred == 100;
    return ok ? 0 : 1;
}
