// The main of every test binary. mp::init comes first, as in any multiproc program: a spawned
// child of a test is this same binary re-executed, and enters there.
#include <gtest/gtest.h>

#include "helpers/leak_check.hpp"
#include "helpers/sanitizer.hpp"
#include "multiproc/multiproc.hpp"

#ifdef MP_TEST_TSAN
// ThreadSanitizer's options for every test binary and every child it spawns (TSAN_OPTIONS, as
// set by the tsan test preset, adds to these):
//   die_after_fork=0  a fork child of a multi-threaded process (the tests' fork variants
//                     start workers while an engine supervisor or helper threads run) goes on
//                     running instead of being killed when it starts a thread. TSan promises
//                     nothing in such a child (another thread may have held a lock of the
//                     runtime or of libc at fork, and the child may deadlock on it); a test
//                     that hangs there for that reason is filtered out for TSan with the
//                     reason next to it. None does so far. Spawn children are fresh TSan
//                     processes (an exec of this binary), and the forkserver forks from its
//                     single thread.
//   handle_segv=0     a worker killed by SIGSEGV dies of the signal, as the tests expect,
//                     instead of TSan reporting it and exiting with code 66.
extern "C" const char* __tsan_default_options() { return "die_after_fork=0 handle_segv=0"; }
#endif

int main(int argc, char** argv) {
    mp::init(argc, argv);
    ::testing::InitGoogleTest(&argc, argv);
    mp::test::install_leak_check();
    return RUN_ALL_TESTS();
}
