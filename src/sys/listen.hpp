// Listening and connecting stream sockets for Listener/Client: Unix paths (bound 0600),
// Linux abstract names, and TCP over IPv4 and IPv6; and the bounded transfers of their
// authentication handshake. Every descriptor is close-on-exec; EINTR is retried (an
// interrupted connect is finished, not restarted).
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "multiproc/detail/fd.hpp"
#include "multiproc/timeout.hpp"
#include "sys/signals.hpp"

namespace mp::sys {

/// A socket address the kernel understands.
struct SockAddr {
    sockaddr_storage storage{};
    socklen_t len = 0;
    [[nodiscard]] int family() const noexcept { return storage.ss_family; }
    /// True for an IPv4 or IPv6 address (TCP), false for a Unix one.
    [[nodiscard]] bool is_ip() const noexcept {
        return family() == AF_INET || family() == AF_INET6;
    }
    [[nodiscard]] const sockaddr* get() const noexcept {
        return reinterpret_cast<const sockaddr*>(&storage);
    }
};

/// The address of a Unix socket at `path`, or of the abstract name `name` (no leading NUL)
/// when abstract; std::system_error(ENAMETOOLONG) when it does not fit sun_path.
SockAddr unix_address(const std::string& path_or_name, bool abstract);
/// The addresses of host:port (numeric or by name; IPv6 and IPv4), for a listener when
/// passive (an empty host is every interface); std::system_error naming the host when none.
std::vector<SockAddr> tcp_addresses(const std::string& host, std::uint16_t port, bool passive);
/// The numeric host and port of an IPv4/IPv6 address.
void numeric_host_port(const SockAddr& a, std::string& host, std::uint16_t& port);

/// A listening socket bound to `a` with `backlog` (TCP: SO_REUSEADDR, and TCP_NODELAY, which
/// the sockets it accepts inherit). A Unix path is created with mode 0600
/// (bound in a private directory, then moved into place, so it is never reachable with wider
/// permissions) and an existing path is std::system_error(EADDRINUSE), as bind would say.
detail::UniqueFd listen_on(const SockAddr& a, int backlog, const std::string& unix_path);
/// accept4 (close-on-exec; TCP_NODELAY comes from the listener), EINTR retried; `peer`
/// receives the peer's address.
detail::UniqueFd accept_on(int listener, SockAddr& peer);
/// A stream socket connected to `a` (TCP_NODELAY on TCP), or std::system_error.
detail::UniqueFd connect_to(const SockAddr& a);
/// The address a socket is bound to (getsockname).
SockAddr local_address(int fd);
/// Sends every byte of iov (MSG_NOSIGNAL), waiting for room in the socket no later than
/// `deadline` (no socket option is set); false when the deadline passed first. A closed peer is
/// mp::EOFError. Waits are interruptible as poll_until's.
[[nodiscard]] bool send_before(int fd, iovec* iov, int iovcnt, detail::Deadline deadline,
                               Interruptible i);
/// Waits (poll) until fd is readable, no later than `deadline`, then makes one recv of at most
/// n bytes: the byte count, 0 at end of file (or reset); nullopt when the deadline passed first.
[[nodiscard]] std::optional<std::size_t> recv_before(int fd, void* buf, std::size_t n,
                                                     detail::Deadline deadline, Interruptible i);
/// Makes a thread blocked in accept() on `listener` return (shutdown; it then fails EINVAL).
void wake_accept(int listener) noexcept;
/// Removes a file, ignoring a missing one.
void unlink_path(const std::string& path) noexcept;

}  // namespace mp::sys
