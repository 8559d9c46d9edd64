#include "sys/eventfd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "sys/syscall.hpp"

namespace mp::sys {

detail::UniqueFd make_eventfd() {
    return detail::UniqueFd(check(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd"));
}

detail::UniqueFd make_ready_eventfd() noexcept {
    return detail::UniqueFd(::eventfd(1, EFD_CLOEXEC));
}

void signal_eventfd(int fd) noexcept {
    const std::uint64_t one = 1;
    static_cast<void>(retry_eintr([&] { return ::write(fd, &one, sizeof one); }));
}

void drain_eventfd(int fd) noexcept {
    std::uint64_t v;
    static_cast<void>(retry_eintr([&] { return ::read(fd, &v, sizeof v); }));
}

}  // namespace mp::sys
