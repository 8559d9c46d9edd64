// A program that uses a start method but whose main() never calls mp::init: the recursive-spawn
// pitfall. Run by spawn_test with MP_TEST_METHOD=spawn|forkserver; it prints "main ran" every
// time main runs, then starts a process. In the child (this same program re-executed) main
// runs again, and the library must stop it at start() with a message naming mp::init; the
// parent then sees an mp::ProcessError, prints it and exits with 3.
#include <cstdio>
#include <cstdlib>

#include "multiproc/context.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/process.hpp"

static void target() {}

int main() {
    std::printf("main ran\n");
    std::fflush(stdout);
    const char* method = std::getenv("MP_TEST_METHOD");
    try {
        mp::Process p(mp::get_context(method ? method : "spawn"), &target);
        p.start();
        p.join();
        std::printf("joined, exitcode %d\n", p.exitcode().value_or(-999));
        return 0;
    } catch (const mp::ProcessError& e) {
        std::printf("ProcessError: %s\n", e.what());
        return 3;
    }
}
