// The calling thread's kernel thread id, cached per thread: the owner mark of a Lock/RLock,
// read by their inline uncontended paths. Filled and reset after fork by src/owner_tid.cpp.
#pragma once

#include <cstdint>

namespace mp::detail {

/// The calling thread's kernel thread id, cached (0 until first needed; reset in a fork child).
__attribute__((tls_model("initial-exec"))) inline thread_local std::uint32_t t_tid = 0;

}  // namespace mp::detail
