// Giving the pages of a range of a shared-memory file back to the kernel without changing its
// size (fallocate PUNCH_HOLE): the range reads as zeros afterwards and costs no memory until it
// is written again. Queues use it for storage they no longer need.
#pragma once

#include <cstddef>

namespace mp::sys {

/// Frees the pages of [offset, offset + len) of fd (a memfd or tmpfs file); throws
/// std::system_error on failure (EINTR retried).
void punch_hole(int fd, std::size_t offset, std::size_t len);

}  // namespace mp::sys
