// eventfd: a counter descriptor one thread or process signals and another waits on with poll
// (sys::poll_until).
#pragma once

#include "multiproc/detail/fd.hpp"

namespace mp::sys {

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) (throws std::system_error).
detail::UniqueFd make_eventfd();
/// An eventfd readable for good (counter 1, close-on-exec): the sentinel of something that has
/// ended. Empty when eventfd fails.
detail::UniqueFd make_ready_eventfd() noexcept;
/// Adds 1 to the counter (never blocks; errors other than EAGAIN are ignored: noexcept).
void signal_eventfd(int fd) noexcept;
/// Resets the counter to zero (non-blocking read; nothing when it is already zero).
void drain_eventfd(int fd) noexcept;

}  // namespace mp::sys
