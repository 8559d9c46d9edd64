// Unix-domain socket transfers: whole sends without SIGPIPE, and descriptors beside the bytes
// (SCM_RIGHTS), received close-on-exec.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <vector>

#include "multiproc/detail/fd.hpp"

namespace mp::sys {

/// Sends every byte of iov (looping on short sends, MSG_NOSIGNAL), with `fds` attached to the
/// first sendmsg; a closed peer is mp::EOFError.
void send_all(int sock, iovec* iov, int iovcnt, std::span<const int> fds = {});
/// Receives up to n bytes with recvmsg, appending any descriptors that arrive (close-on-exec)
/// to `fds`; returns the byte count, 0 at end of file.
std::size_t recv_some(int sock, void* buf, std::size_t n, std::vector<detail::UniqueFd>& fds);

}  // namespace mp::sys
