#include <fcntl.h>
#include <unistd.h>

#include "multiproc/detail/fd.hpp"
#include "sys/syscall.hpp"

namespace mp::detail {

void UniqueFd::reset(int fd) noexcept {
    // Never retry close on EINTR: Linux releases the descriptor before reporting it, and a retry
    // could close a descriptor another thread has just been given.
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

UniqueFd UniqueFd::dup_of(int fd) {
    return UniqueFd(sys::check(::fcntl(fd, F_DUPFD_CLOEXEC, 0), "fcntl(F_DUPFD_CLOEXEC)"));
}

}  // namespace mp::detail
