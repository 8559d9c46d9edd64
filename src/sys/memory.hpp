// The memory a process uses, as the kernel accounts it.
#pragma once

#include <cstddef>

namespace mp::sys {

/// The calling process's resident set size in bytes (the second field of /proc/self/statm,
/// in pages); 0 when it cannot be read.
[[nodiscard]] std::size_t resident_set_bytes() noexcept;

}  // namespace mp::sys
