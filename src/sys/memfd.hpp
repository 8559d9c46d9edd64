// Anonymous shared memory: memfd_create(MFD_CLOEXEC). The memory has no name anywhere in the
// file system, so nothing is left behind when every process holding it has exited, even by
// SIGKILL; it crosses to other processes only as a descriptor.
#pragma once

#include <cstddef>

#include "multiproc/detail/fd.hpp"

namespace mp::sys {

/// A close-on-exec memfd of `size` zero bytes; `name` shows in /proc/<pid>/fd only.
detail::UniqueFd make_memfd(const char* name, std::size_t size);
/// The size of the file behind fd (fstat), throws std::system_error.
std::size_t file_size(int fd);

}  // namespace mp::sys
