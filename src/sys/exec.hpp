// Starting a fresh program image: posix_spawn (clone(CLONE_VM|CLONE_VFORK) + exec inside
// glibc, so the cost does not grow with the parent's memory) with an exact descriptor layout.
// The child gets stdio, the given descriptors at 3, 4, ... and nothing else; its signal mask
// is emptied. Exec failure is reported synchronously by glibc (the vfork child writes errno
// into memory the parent reads after it resumes), so there is no error pipe to manage here.
#pragma once

#include <sys/types.h>

#include <span>

#include "multiproc/detail/fd.hpp"

namespace mp::sys {

/// Execs `path` with `argv` (nullptr-terminated) and `envp` (nullptr: the current environment)
/// in a new child, which holds stdio plus fds[i] at descriptor 3 + i (inheritable there) and no
/// other descriptor. Returns the child's pid; an exec failure is std::system_error with its errno.
pid_t spawn_with_fds(const char* path, char* const argv[], std::span<const int> fds,
                     char* const envp[] = nullptr);

/// execve of this very program (/proc/self/exe) with `argv` and `envp`, descriptors as they
/// are; returns only when the exec failed (errno set). Async-signal-safe.
void exec_self(char* const argv[], char* const envp[]) noexcept;

}  // namespace mp::sys
