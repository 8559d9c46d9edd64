// Unix-domain socket transfers: whole sends without SIGPIPE, and descriptors beside the bytes
// (SCM_RIGHTS), received close-on-exec. send_once / recv_once are the single sendmsg / recvmsg
// both the blocking calls here and the non-blocking ones (nbsocket.hpp) are made of.
#pragma once

#include <sys/types.h>
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

/// One sendmsg(flags | MSG_NOSIGNAL) of iov with `fds` attached, EINTR retried: sendmsg's
/// result (-1 with errno set). mp::ProcessError for more than SCM_MAX_FD descriptors.
ssize_t send_once(int sock, const iovec* iov, int iovcnt, std::span<const int> fds, int flags);
/// One recvmsg(flags | MSG_CMSG_CLOEXEC) into buf, EINTR retried, appending arriving
/// descriptors to `fds`: recvmsg's result (-1 with errno set). mp::ProcessError when the
/// kernel truncated the descriptors (those that arrived are in `fds` all the same).
ssize_t recv_once(int sock, void* buf, std::size_t n, std::vector<detail::UniqueFd>& fds,
                  int flags);

/// One send(MSG_NOSIGNAL) of n bytes (one record on a SOCK_SEQPACKET socket), EINTR retried:
/// send's result (-1 with errno set). Never throws.
ssize_t send_record(int sock, const void* buf, std::size_t n) noexcept;
/// One recv of at most n bytes (one record on a SOCK_SEQPACKET socket), EINTR retried: recv's
/// result (0 at end of file, -1 with errno set). Never throws.
ssize_t recv_record(int sock, void* buf, std::size_t n) noexcept;

}  // namespace mp::sys
