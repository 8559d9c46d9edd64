// Waiting for children and reading how they ended. Codes follow Python's Process.exitcode: the
// exit status, or -N for a child killed by signal N.
#pragma once

#include <sys/types.h>

namespace mp::sys {

/// waitpid(pid, 0) until it ends (EINTR retried): its wait status, or -errno.
int wait_pid(pid_t pid) noexcept;
/// waitpid(-1, WNOHANG), EINTR retried: the pid of an ended child (reaped, `status` set), 0
/// when none has ended, -errno (ECHILD: no child left).
pid_t reap_any_nohang(int& status) noexcept;
/// waitid(P_PID, pid, WEXITED | WNOHANG), EINTR retried: 1 when it had ended (reaped now,
/// `code` set), 0 while it runs, -errno (ECHILD: someone else reaped it).
int reap_child_nohang(pid_t pid, int& code) noexcept;
/// waitid(P_PID, pid, WEXITED | WNOWAIT): blocks until it has ended, leaving it to be reaped;
/// 0 or -errno.
int wait_child_ended(pid_t pid) noexcept;
/// The code of a wait status: the exit status, or -N when killed by signal N.
[[nodiscard]] int exit_code_of(int status) noexcept;

}  // namespace mp::sys
