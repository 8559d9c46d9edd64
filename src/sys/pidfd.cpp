#include "sys/pidfd.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "sys/syscall.hpp"

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

}  // namespace mp::sys
