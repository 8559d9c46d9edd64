// POSIX shared-memory objects by name (shm_open / shm_unlink). Names are given without the
// leading slash (Python's SharedMemory names); these functions add it.
#pragma once

#include <cstddef>
#include <string>

namespace mp::sys {

/// shm_open("/" + name) read-write and close-on-exec; `create`: O_CREAT | O_EXCL, mode 0600.
/// The descriptor, or -errno (EEXIST, ENOENT, ...).
int shm_open_fd(const std::string& name, bool create) noexcept;
/// shm_unlink("/" + name); 0 or -errno.
int shm_unlink_name(const std::string& name) noexcept;
/// ftruncate(fd, size), EINTR retried (throws std::system_error).
void resize_file(int fd, std::size_t size);

}  // namespace mp::sys
