#include "sys/pidfd.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "multiproc/errors.hpp"
#include "sys/process.hpp"
#include "sys/syscall.hpp"
#include "sys/wait.hpp"

namespace mp::sys {

// The raw syscalls rather than glibc's wrappers (2.36+) so that older C libraries build too.
// A pidfd is always close-on-exec; the kernel sets O_CLOEXEC on every pidfd it returns.
int pidfd_open_raw(pid_t pid) noexcept {
    long r = ::syscall(SYS_pidfd_open, pid, 0U);
    return r < 0 ? -errno : static_cast<int>(r);
}

detail::UniqueFd pidfd_open(pid_t pid) {
    int r = pidfd_open_raw(pid);
    if (r < 0) throw_os_error("pidfd_open", -r);
    return detail::UniqueFd(r);
}

int pidfd_send_signal(int pidfd, int sig) noexcept {
    long r = retry_eintr([&] { return ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0U); });
    return r < 0 ? -errno : 0;
}

detail::UniqueFd pidfd_of_new_child(pid_t pid) {
    const int fd = pidfd_open_raw(pid);
    if (fd < 0) {
        static_cast<void>(send_signal(pid, SIGKILL));
        static_cast<void>(wait_pid(pid));
        throw_os_error("pidfd_open", -fd);
    }
    return detail::UniqueFd(fd);
}

bool pidfd_exited(int pidfd) noexcept {
    pollfd p{pidfd, POLLIN, 0};
    const int r = retry_eintr([&] { return ::poll(&p, 1, 0); });
    return r > 0 && (p.revents & POLLIN);
}

}  // namespace mp::sys
