#include "sys/wait.hpp"

#include <sys/wait.h>

#include <cerrno>
#include <cstring>

#include "sys/syscall.hpp"

namespace mp::sys {

int wait_pid(pid_t pid) noexcept {
    int status = 0;
    return retry_eintr([&] { return ::waitpid(pid, &status, 0); }) == -1 ? -errno : status;
}

pid_t reap_any_nohang(int& status) noexcept {
    const pid_t pid = retry_eintr([&] { return ::waitpid(-1, &status, WNOHANG); });
    return pid < 0 ? -errno : pid;
}

int reap_child_nohang(pid_t pid, int& code) noexcept {
    siginfo_t si;
    std::memset(&si, 0, sizeof si);
    if (retry_eintr([&] {
            return ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG);
        }) == -1)
        return -errno;
    if (si.si_pid == 0) return 0;  // still running
    code = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
    return 1;
}

int wait_child_ended(pid_t pid) noexcept {
    siginfo_t si;
    std::memset(&si, 0, sizeof si);
    return retry_eintr([&] {
               return ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOWAIT);
           }) == -1
               ? -errno
               : 0;
}

int exit_code_of(int status) noexcept {
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

}  // namespace mp::sys
