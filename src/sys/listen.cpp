#include "sys/listen.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "multiproc/errors.hpp"
#include "sys/io.hpp"
#include "sys/socket.hpp"
#include "sys/syscall.hpp"

namespace mp::sys {

using detail::UniqueFd;

SockAddr unix_address(const std::string& path_or_name, bool abstract) {
    SockAddr a;
    auto* un = reinterpret_cast<sockaddr_un*>(&a.storage);
    un->sun_family = AF_UNIX;
    const std::size_t off = abstract ? 1 : 0;  // abstract names start with a NUL byte
    if (path_or_name.empty() ||
        path_or_name.size() + off + (abstract ? 0 : 1) > sizeof un->sun_path)
        throw std::system_error(ENAMETOOLONG, std::generic_category(),
                                "multiproc: a Unix socket address must be 1 to " +
                                    std::to_string(sizeof un->sun_path - 1) + " bytes: '" +
                                    path_or_name + "'");
    std::memcpy(un->sun_path + off, path_or_name.data(), path_or_name.size());
    a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + off + path_or_name.size() +
                                   (abstract ? 0 : 1));
    return a;
}

std::vector<SockAddr> tcp_addresses(const std::string& host, std::uint16_t port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    // getaddrinfo may retry internally; EAI_SYSTEM with EINTR is retried here.
    int rc;
    do {
        rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
    } while (rc == EAI_SYSTEM && errno == EINTR);
    if (rc != 0)
        throw std::system_error(rc == EAI_SYSTEM ? errno : EHOSTUNREACH, std::generic_category(),
                                "multiproc: cannot resolve '" + host + "': " + ::gai_strerror(rc));
    std::vector<SockAddr> out;
    for (addrinfo* p = res; p; p = p->ai_next) {
        if (p->ai_addrlen > sizeof(sockaddr_storage)) continue;
        SockAddr a;
        std::memcpy(&a.storage, p->ai_addr, p->ai_addrlen);
        a.len = p->ai_addrlen;
        out.push_back(a);
    }
    ::freeaddrinfo(res);
    return out;
}

void numeric_host_port(const SockAddr& a, std::string& host, std::uint16_t& port) {
    char h[NI_MAXHOST], s[NI_MAXSERV];
    const int rc =
        ::getnameinfo(a.get(), a.len, h, sizeof h, s, sizeof s, NI_NUMERICHOST | NI_NUMERICSERV);
    if (rc != 0) throw ProcessError(std::string("multiproc: getnameinfo: ") + ::gai_strerror(rc));
    host = h;
    port = static_cast<std::uint16_t>(std::stoul(s));
}

namespace {

UniqueFd stream_socket(int family) {
    return UniqueFd(check(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
}

// Binds a Unix socket so that it appears at `path` only once it has mode 0600: bound inside
// a fresh private directory beside the target (mode 0700, so nobody can connect meanwhile),
// chmod'ed, then renamed into place without replacing anything that is already there.
void bind_private_unix(int fd, const std::string& path) {
    const auto slash = path.rfind('/');
    const std::string dir =
        slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    std::string tmpl = dir + "/.mp-listener-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw_os_error("mkdtemp");
    const std::string tmp = tmpl + "/s";
    auto cleanup = [&] {
        ::unlink(tmp.c_str());
        ::rmdir(tmpl.c_str());
    };
    SockAddr a = unix_address(tmp, false);
    if (::bind(fd, a.get(), a.len) != 0 || ::chmod(tmp.c_str(), 0600) != 0 ||
        ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
        const int err = errno == EEXIST ? EADDRINUSE : errno;
        cleanup();
        throw_os_error(("bind(" + path + ")").c_str(), err);
    }
    cleanup();
}

}  // namespace

UniqueFd listen_on(const SockAddr& a, int backlog, const std::string& unix_path) {
    UniqueFd fd = stream_socket(a.family());
    if (a.family() == AF_UNIX && !unix_path.empty()) {
        bind_private_unix(fd.get(), unix_path);
    } else {
        if (a.family() != AF_UNIX) {
            const int one = 1;
            check(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one),
                  "setsockopt(SO_REUSEADDR)");
            // Set once here: Linux copies it to every accepted socket, which saves a system
            // call per connection (tested: Listener.AcceptedTcpConnectionsSendWithoutDelay).
            check(::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one),
                  "setsockopt(TCP_NODELAY)");
        }
        check(::bind(fd.get(), a.get(), a.len), "bind");
    }
    check(::listen(fd.get(), backlog), "listen");
    return fd;
}

UniqueFd accept_on(int listener, SockAddr& peer) {
    peer.len = sizeof peer.storage;
    const int fd = check_retry(
        [&] {
        return ::accept4(listener, reinterpret_cast<sockaddr*>(&peer.storage), &peer.len,
                         SOCK_CLOEXEC);
        },
        "accept4");
    return UniqueFd(fd);
}

UniqueFd connect_to(const SockAddr& a) {
    UniqueFd fd = stream_socket(a.family());
    if (::connect(fd.get(), a.get(), a.len) != 0) {
        if (errno != EINTR) throw_os_error("connect");
        // An interrupted connect goes on in the kernel: wait for it to finish, then read its
        // outcome (calling connect again would say EALREADY).
        pollfd p{fd.get(), POLLOUT, 0};
        while (::poll(&p, 1, -1) < 0)
            if (errno != EINTR) throw_os_error("poll");
        int err = 0;
        socklen_t len = sizeof err;
        check(::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len), "getsockopt(SO_ERROR)");
        if (err) throw_os_error("connect", err);
    }
    if (a.family() == AF_INET || a.family() == AF_INET6) {
        const int one = 1;
        check(::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one),
              "setsockopt(TCP_NODELAY)");
    }
    return fd;
}

SockAddr local_address(int fd) {
    SockAddr a;
    a.len = sizeof a.storage;
    check(::getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.len), "getsockname");
    return a;
}

bool send_before(int fd, iovec* iov, int iovcnt, detail::Deadline deadline, Interruptible i) {
    while (iovcnt > 0) {
        const ssize_t r = send_once(fd, iov, iovcnt, {}, MSG_DONTWAIT);
        if (r >= 0) {
            advance_iov(iov, iovcnt, static_cast<std::size_t>(r));
            continue;
        }
        if (errno == EPIPE || errno == ECONNRESET)
            throw EOFError("multiproc: send: the other end is closed");
        if (errno != EAGAIN && errno != EWOULDBLOCK) throw_os_error("sendmsg");
        pollfd p{fd, POLLOUT, 0};
        if (poll_until(&p, 1, deadline, i) == 0) return false;
    }
    return true;
}

std::optional<std::size_t> recv_before(int fd, void* buf, std::size_t n, detail::Deadline deadline,
                                       Interruptible i) {
    for (;;) {
        if (!wait_readable(fd, deadline, i)) return std::nullopt;
        const ssize_t r = retry_eintr([&] { return ::recv(fd, buf, n, MSG_DONTWAIT); });
        if (r >= 0) return static_cast<std::size_t>(r);
        if (errno == ECONNRESET) return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK) throw_os_error("recv");
    }
}

void wake_accept(int listener) noexcept { ::shutdown(listener, SHUT_RDWR); }

void unlink_path(const std::string& path) noexcept { ::unlink(path.c_str()); }

}  // namespace mp::sys
