#include "sys/socket.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "multiproc/errors.hpp"
#include "sys/io.hpp"
#include "sys/syscall.hpp"

namespace mp::sys {

namespace {
constexpr std::size_t kMaxFds = 253;  // SCM_MAX_FD
}

ssize_t send_once(int sock, const iovec* iov, int iovcnt, std::span<const int> fds, int flags) {
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
    return retry_eintr([&] { return ::sendmsg(sock, &msg, flags | MSG_NOSIGNAL); });
}

ssize_t recv_once(int sock, void* buf, std::size_t n, std::vector<detail::UniqueFd>& fds,
                  int flags) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    iovec iov{buf, n};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t r = retry_eintr([&] { return ::recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC); });
    if (r < 0) return r;
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

void send_all(int sock, iovec* iov, int iovcnt, std::span<const int> fds) {
    while (iovcnt > 0 || !fds.empty()) {
        const ssize_t r = send_once(sock, iov, iovcnt, fds, 0);
        if (r < 0) {
            if (errno == EPIPE || errno == ECONNRESET)
                throw EOFError("multiproc: send: the other end is closed");
            throw_os_error("sendmsg");
        }
        fds = {};  // the kernel attached them to the first byte sent
        advance_iov(iov, iovcnt, static_cast<std::size_t>(r));
    }
}

std::size_t recv_some(int sock, void* buf, std::size_t n, std::vector<detail::UniqueFd>& fds) {
    const ssize_t r = recv_once(sock, buf, n, fds, 0);
    if (r < 0) {
        if (errno == ECONNRESET) return 0;
        throw_os_error("recvmsg");
    }
    return static_cast<std::size_t>(r);
}

ssize_t send_record(int sock, const void* buf, std::size_t n) noexcept {
    return retry_eintr([&] { return ::send(sock, buf, n, MSG_NOSIGNAL); });
}

ssize_t recv_record(int sock, void* buf, std::size_t n) noexcept {
    return retry_eintr([&] { return ::recv(sock, buf, n, 0); });
}

}  // namespace mp::sys
