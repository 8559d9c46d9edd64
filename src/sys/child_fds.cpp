#include "sys/child_fds.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "sys/bound.hpp"

namespace mp::sys {

// Hot (the forkserver's every child runs it between fork and its target): grouped in
// .text.hot, and calling the C library through bound().
[[gnu::hot]] void place_child_fds(std::span<int> fds) noexcept {
    const int n = static_cast<int>(fds.size());
    const int first_free = 3 + n;
    // Two steps so that no source is overwritten before it is moved: sources inside the target
    // range go above it first; then each goes down into place, close-on-exec (dup3).
    for (int& fd : fds)
        if (fd >= 3 && fd < first_free) fd = bound(&::fcntl)(fd, F_DUPFD_CLOEXEC, first_free);
    for (int i = 0; i < n; ++i) {
        if (fds[i] >= 0) bound (&::dup3)(fds[i], 3 + i, O_CLOEXEC);
        else bound (&::close)(3 + i);  // whatever sits there is not the child's
    }
    bound (&::close_range)(static_cast<unsigned>(first_free), ~0U, 0);
}

void close_fds_except(int a, int b) noexcept {
    const int lo = std::min(a, b), hi = std::max(a, b);
    if (lo > 3) ::close_range(3, static_cast<unsigned>(lo - 1), 0);
    if (hi > lo + 1) ::close_range(static_cast<unsigned>(lo + 1), static_cast<unsigned>(hi - 1), 0);
    ::close_range(static_cast<unsigned>(hi + 1), ~0U, 0);
}

int set_cloexec(int fd, bool on) noexcept {
    return ::fcntl(fd, F_SETFD, on ? FD_CLOEXEC : 0) == -1 ? -errno : 0;
}

void leave_program_files() noexcept {
    if (int null = ::open("/dev/null", O_RDWR | O_CLOEXEC); null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        if (null > 2) ::close(null);
    }
    static_cast<void>(::chdir("/"));
}

}  // namespace mp::sys
