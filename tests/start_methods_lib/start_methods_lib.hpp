// A shared library linked to spawn_test and forkserver_test: a Process target that lives in a
// module other than the executable.
#pragma once

#include "multiproc/connection.hpp"

namespace start_methods_lib {

/// Sends x * 10 on c, then exits with code x (std::exit, so the child's exit path is used).
void reply_and_exit(int x, mp::Connection c);

}  // namespace start_methods_lib
