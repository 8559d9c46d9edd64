// Non-blocking transfers on a stream socket with descriptors beside the bytes (SCM_RIGHTS):
// what an event loop that must never stall on one peer needs (the task engine's supervisor).
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <vector>

#include "multiproc/detail/fd.hpp"

namespace mp::sys {

/// One sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL) of iov with `fds` attached: the bytes sent (0 when
/// the socket buffer is full), -1 when the peer is gone (EPIPE, ECONNRESET). Other errors throw.
ssize_t send_nonblocking(int sock, const iovec* iov, int iovcnt, std::span<const int> fds);
/// One recvmsg(MSG_DONTWAIT | MSG_CMSG_CLOEXEC) into buf, appending arriving descriptors to
/// fds: the bytes received, -1 when nothing is there yet (EAGAIN), 0 at end of file (or reset).
ssize_t recv_nonblocking(int sock, void* buf, std::size_t n, std::vector<detail::UniqueFd>& fds);

}  // namespace mp::sys
