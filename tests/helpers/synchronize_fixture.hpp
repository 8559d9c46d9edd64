// What the cross-process synchronize tests (tests/synchronize_test.cpp,
// tests/synchronize_owner_death_test.cpp) share: their fixture, a Condition waiter, and the check
// that at the end of the binary no /dev/shm segment of its processes remains.
#pragma once

#include <chrono>
#include <cstdlib>
#include <mutex>

#include "helpers/shm_leftovers.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/sharedctypes.hpp"
#include "multiproc/synchronize.hpp"

namespace mp::test {

// At the end of the binary: no /dev/shm segment of this binary's processes remains.
[[maybe_unused]] inline const bool g_synchronize_shm_check = install_shm_leftover_check();

/// A synchronize test across processes, run once per start method.
class SyncP : public StartMethodTest {};

/// In a child: counts itself in `waiting`, then waits on c until go is set (exit 2 after 30 s).
inline void wait_for_go(mp::Condition c, mp::RawValue<int> go, mp::RawValue<int> waiting) {
    std::scoped_lock lk(c);
    ++waiting.value();
    if (!c.wait_for([&] { return go.value() != 0; }, std::chrono::seconds(30))) std::exit(2);
}

}  // namespace mp::test
