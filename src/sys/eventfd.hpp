// eventfd: a counter descriptor one thread or process signals and another waits on with poll,
// and the interruptible wait the Pool's blocking calls use: unlike sys::poll_until, a signal
// whose handler runs during the wait ends it (EINTR is reported, not retried), so a program
// with a SIGINT handler gets its blocking call back.
#pragma once

#include <poll.h>

#include <cstddef>

#include "multiproc/detail/fd.hpp"
#include "multiproc/timeout.hpp"

namespace mp::sys {

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) (throws std::system_error).
detail::UniqueFd make_eventfd();
/// Adds 1 to the counter (never blocks; errors other than EAGAIN are ignored: noexcept).
void signal_eventfd(int fd) noexcept;
/// Resets the counter to zero (non-blocking read; nothing when it is already zero).
void drain_eventfd(int fd) noexcept;
/// poll(2) until one entry is ready or the deadline passes: the number of ready entries (0 on
/// timeout), or -1 when a signal handler ran (EINTR), which is NOT retried.
int poll_interruptible(pollfd* fds, std::size_t n, detail::Deadline deadline);

}  // namespace mp::sys
