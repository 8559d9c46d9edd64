// Another build of "a multiproc program" for spawn_test's set_executable case: it calls
// mp::init (so a spawned child enters the bootstrap), but its build id is not the test's, so
// a call shipped by the test must be refused.
#include <multiproc/multiproc.hpp>

#include <cstdio>

int main(int argc, char** argv) {
    mp::init(argc, argv);
    std::puts("other build: main ran");
    return 0;
}
