// pidfd: a descriptor that names one process for its whole life (Linux >= 5.3). It cannot be
// fooled by pid reuse, becomes readable when the process exits, and signals sent through it
// reach that process or nobody.
#pragma once

#include <sys/types.h>

#include "multiproc/detail/fd.hpp"

namespace mp::sys {

/// pidfd_open(pid) with close-on-exec; returns -errno on failure, never throws (fork-child safe).
int pidfd_open_raw(pid_t pid) noexcept;
/// pidfd_open(pid) as an owned descriptor (throws std::system_error).
detail::UniqueFd pidfd_open(pid_t pid);
/// pidfd_send_signal(pidfd, sig); returns 0 or -errno (ESRCH: the process has exited).
int pidfd_send_signal(int pidfd, int sig) noexcept;

/// The pidfd of `pid`, a child this process just started and alone reaps (so its pid cannot
/// have been reused). When pidfd_open fails, the child is killed and reaped, then the error is
/// thrown (std::system_error): a child nobody can watch is not left running.
detail::UniqueFd pidfd_of_new_child(pid_t pid);

/// Whether the process of `pidfd` has exited (the pidfd is readable: at most a zombie is left).
[[nodiscard]] bool pidfd_exited(int pidfd) noexcept;

}  // namespace mp::sys
