#include "sys/nbsocket.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "multiproc/errors.hpp"
#include "sys/syscall.hpp"

namespace mp::sys {

namespace {
constexpr std::size_t kMaxFds = 253;  // SCM_MAX_FD
}

ssize_t send_nonblocking(int sock, const iovec* iov, int iovcnt, std::span<const int> fds) {
    if (fds.size() > kMaxFds) throw ProcessError("multiproc: too many descriptors in one message");
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<std::size_t>(iovcnt);
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t r = retry_eintr([&] { return ::sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL); });
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno == EPIPE || errno == ECONNRESET) return -1;
    throw_os_error("sendmsg");
}

ssize_t recv_nonblocking(int sock, void* buf, std::size_t n, std::vector<detail::UniqueFd>& fds) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    iovec iov{buf, n};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t r = retry_eintr(
        [&] { return ::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); });
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
        if (errno == ECONNRESET) return 0;
        throw_os_error("recvmsg");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            fds.emplace_back(fd);
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) throw ProcessError("multiproc: descriptors were truncated");
    return r;
}

}  // namespace mp::sys
