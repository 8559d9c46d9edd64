// The main of every test binary. mp::init comes first, as in any multiproc program: a spawned
// child of a test is this same binary re-executed, and enters there.
#include <gtest/gtest.h>

#include "helpers/leak_check.hpp"
#include "multiproc/multiproc.hpp"

int main(int argc, char** argv) {
    mp::init(argc, argv);
    ::testing::InitGoogleTest(&argc, argv);
    mp::test::install_leak_check();
    return RUN_ALL_TESTS();
}
