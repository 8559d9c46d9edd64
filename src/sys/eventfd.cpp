#include "sys/eventfd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "sys/syscall.hpp"

namespace mp::sys {

detail::UniqueFd make_eventfd() {
    return detail::UniqueFd(check(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd"));
}

void signal_eventfd(int fd) noexcept {
    const std::uint64_t one = 1;
    static_cast<void>(retry_eintr([&] { return ::write(fd, &one, sizeof one); }));
}

void drain_eventfd(int fd) noexcept {
    std::uint64_t v;
    static_cast<void>(retry_eintr([&] { return ::read(fd, &v, sizeof v); }));
}

int poll_interruptible(pollfd* fds, std::size_t n, detail::Deadline deadline) {
    for (;;) {
        int r = ::poll(fds, n, deadline.poll_ms());
        if (r > 0) return r;
        if (r == 0) {
            // poll's millisecond rounding can wake a hair early; only a passed deadline ends it.
            if (!deadline.is_forever() && !deadline.expired()) continue;
            return 0;
        }
        if (errno == EINTR) return -1;
        throw_os_error("poll");
    }
}

}  // namespace mp::sys
