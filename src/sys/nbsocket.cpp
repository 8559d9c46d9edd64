#include "sys/nbsocket.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "multiproc/errors.hpp"
#include "sys/socket.hpp"

namespace mp::sys {

ssize_t send_nonblocking(int sock, const iovec* iov, int iovcnt, std::span<const int> fds) {
    const ssize_t r = send_once(sock, iov, iovcnt, fds, MSG_DONTWAIT);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno == EPIPE || errno == ECONNRESET) return -1;
    throw_os_error("sendmsg");
}

ssize_t recv_nonblocking(int sock, void* buf, std::size_t n, std::vector<detail::UniqueFd>& fds) {
    const ssize_t r = recv_once(sock, buf, n, fds, MSG_DONTWAIT);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    if (errno == ECONNRESET) return 0;
    throw_os_error("recvmsg");
}

}  // namespace mp::sys
