#include "multiproc/listener.hpp"

#include <charconv>
#include <mutex>
#include <system_error>

#include "auth.hpp"
#include "sys/io.hpp"
#include "sys/listen.hpp"
#include "sys/signals.hpp"

namespace mp {

using detail::UniqueFd;

// --- Address ------------------------------------------------------------------------------------

Address Address::unix_socket(std::string path) {
    if (path.empty()) throw UsageError("multiproc: a Unix socket address needs a path");
    return Address(Family::unix_path, std::move(path), 0);
}

Address Address::abstract_socket(std::string name) {
    if (name.empty()) throw UsageError("multiproc: an abstract socket address needs a name");
    return Address(Family::abstract, std::move(name), 0);
}

Address Address::tcp(std::string host, std::uint16_t port) {
    return Address(Family::tcp, std::move(host), port);
}

Address Address::parse(std::string_view text) {
    if (text.empty()) throw UsageError("multiproc: an empty address");
    if (text.front() == '@' || text.front() == '\0') return abstract_socket(std::string(text.substr(1)));
    // TCP: "host:port" or "[v6 literal]:port", the port all digits.
    const auto colon = text.rfind(':');
    if (colon != std::string_view::npos && colon + 1 < text.size() && text.find('/') == std::string_view::npos) {
        const std::string_view port_text = text.substr(colon + 1);
        unsigned port = 0;
        const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec == std::errc() && end == port_text.data() + port_text.size() && port <= 65535) {
            std::string_view host = text.substr(0, colon);
            if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
            return tcp(std::string(host), static_cast<std::uint16_t>(port));
        }
    }
    return unix_socket(std::string(text));
}

std::string Address::to_string() const {
    switch (family_) {
        case Family::unix_path:
            return host_;
        case Family::abstract:
            return "@" + host_;
        case Family::tcp:
            return (host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
    }
    return host_;
}

namespace {

sys::SockAddr unix_sock_address(const Address& a) {
    return sys::unix_address(a.host(), a.family() == Address::Family::abstract);
}

Address address_of(const sys::SockAddr& s, const Address& fallback) {
    if (s.is_ip()) {
        std::string host;
        std::uint16_t port = 0;
        sys::numeric_host_port(s, host, port);
        return Address::tcp(std::move(host), port);
    }
    return fallback;
}

// Runs `exchange` with the handshake timeout on c's socket, so a peer that stalls mid-handshake
// cannot hold the caller; every failure is an AuthenticationError and closes c.
template <class F>
void handshake(Connection& c, const AuthOptions& auth, F&& exchange) {
    const int fd = c.fileno();
    try {
        sys::set_io_timeout(fd, auth.handshake_timeout);
        exchange();
        sys::set_io_timeout(fd, std::chrono::milliseconds(0));
    } catch (const AuthenticationError&) {
        c.close();
        throw;
    } catch (const std::system_error& e) {
        c.close();
        const bool timed_out = e.code().value() == EAGAIN || e.code().value() == EWOULDBLOCK;
        throw AuthenticationError(std::string("multiproc: authentication failed: ") +
                                  (timed_out ? "the peer did not complete the handshake in time"
                                             : e.what()));
    } catch (const std::exception& e) {
        c.close();
        throw AuthenticationError(std::string("multiproc: authentication failed: ") + e.what());
    }
}

std::string recv_handshake_message(Connection& c) {
    const auto b = c.recv_bytes(detail::kMaxHandshakeMessage);
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// Python's deliver_challenge, from after the challenge was sent.
void check_response(Connection& c, std::string_view key, const std::string& message) {
    const std::string response = recv_handshake_message(c);
    bool ok = false;
    try {
        ok = detail::response_is_valid(key, message, response);
    } catch (const AuthenticationError&) {
        c.send_bytes(detail::kFailure);
        throw;
    }
    if (!ok) {
        c.send_bytes(detail::kFailure);
        throw AuthenticationError("multiproc: authentication failed: the digest received was wrong");
    }
    c.send_bytes(detail::kWelcome);
}

// Sends a fresh challenge; returns it for check_response.
std::string send_challenge(Connection& c, AuthDigest digest) {
    std::string message = detail::make_challenge(digest);
    c.send_bytes(std::string(detail::kChallenge) + message);
    return message;
}

// Python's answer_challenge, up to (not including) reading the verdict.
void answer(Connection& c, std::string_view key) {
    const std::string message = recv_handshake_message(c);
    if (message.compare(0, detail::kChallenge.size(), detail::kChallenge) != 0)
        throw AuthenticationError("multiproc: authentication failed: protocol error, expected a challenge");
    c.send_bytes(detail::respond_to_challenge(key, std::string_view(message).substr(detail::kChallenge.size())));
}

void expect_welcome(Connection& c) {
    if (recv_handshake_message(c) != detail::kWelcome)
        throw AuthenticationError("multiproc: authentication failed: the digest sent was rejected");
}

}  // namespace

void authenticate_server(Connection& c, std::string_view authkey, AuthOptions auth) {
    handshake(c, auth, [&] {
        check_response(c, authkey, send_challenge(c, auth.digest));
        answer(c, authkey);
        expect_welcome(c);
    });
}

void authenticate_client(Connection& c, std::string_view authkey, AuthOptions auth) {
    // Our challenge goes out right behind our answer, before the server's verdict: the server
    // reads it next anyway (Python's Listener too), and it saves two one-way trips, a third of
    // the handshake's wake-ups. A server that refuses our answer never reads it.
    handshake(c, auth, [&] {
        answer(c, authkey);
        const std::string ours = send_challenge(c, auth.digest);
        expect_welcome(c);
        check_response(c, authkey, ours);
    });
}

// --- Listener -----------------------------------------------------------------------------------

namespace detail {
struct ListenerState {
    ListenerState(const Address& a, std::optional<std::string> key, AuthOptions o)
        : address(a), authkey(std::move(key)), auth(o) {}
    UniqueFd fd;
    Address address;
    std::string unix_path;  // removed at close
    std::optional<std::string> authkey;
    AuthOptions auth;
    mutable std::mutex m;
    std::optional<Address> last_accepted;
};
}  // namespace detail

Listener::Listener(const Address& address, int backlog, std::optional<std::string> authkey, AuthOptions auth) {
    auto s = std::make_unique<detail::ListenerState>(address, std::move(authkey), auth);
    if (address.family() == Address::Family::tcp) {
        std::exception_ptr last;
        for (const auto& a : sys::tcp_addresses(address.host(), address.port(), true)) {
            try {
                s->fd = sys::listen_on(a, backlog, {});
                s->address = address_of(sys::local_address(s->fd.get()), address);
                if (!address.host().empty()) s->address = Address::tcp(address.host(), s->address.port());
                break;
            } catch (...) {
                last = std::current_exception();
            }
        }
        if (!s->fd) std::rethrow_exception(last);
    } else {
        const bool path = address.family() == Address::Family::unix_path;
        s->fd = sys::listen_on(unix_sock_address(address), backlog, path ? address.host() : std::string());
        if (path) s->unix_path = address.host();
    }
    s_ = std::move(s);
}

Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&& o) noexcept {
    if (this != &o) {
        close();
        s_ = std::move(o.s_);
    }
    return *this;
}
Listener::~Listener() { close(); }

Connection Listener::accept() {
    if (closed()) throw ProcessError("multiproc: accept: the listener is closed");
    sys::SockAddr peer;
    UniqueFd fd;
    try {
        // Wait in poll, not in accept: under an mp::SigintGuard, Ctrl-C ends the wait with
        // mp::KeyboardInterrupt (accept4 itself would be restarted by the SA_RESTART handler).
        static_cast<void>(sys::wait_readable(s_->fd.get(), detail::Deadline::never(), sys::Interruptible::yes));
        fd = sys::accept_on(s_->fd.get(), peer);
    } catch (const std::system_error&) {
        if (closed() || errno == EINVAL) throw ProcessError("multiproc: accept: the listener was closed");
        throw;
    }
    const bool tcp = peer.is_ip();
    Connection c = detail::make_peer_connection(std::move(fd), tcp, s_->auth.trust_code);
    {
        std::lock_guard lk(s_->m);
        s_->last_accepted = tcp ? address_of(peer, s_->address)
                                : (s_->address.family() == Address::Family::abstract
                                       ? s_->address
                                       : Address::unix_socket(s_->address.host()));
    }
    if (s_->authkey) authenticate_server(c, *s_->authkey, s_->auth);
    return c;
}

void Listener::close() noexcept {
    if (!s_ || !s_->fd) return;
    sys::wake_accept(s_->fd.get());
    s_->fd.reset();
    if (!s_->unix_path.empty()) sys::unlink_path(s_->unix_path);
}

bool Listener::closed() const noexcept { return !s_ || !s_->fd; }

const Address& Listener::address() const {
    if (!s_) throw UsageError("multiproc: the listener was moved from");
    return s_->address;
}

std::optional<Address> Listener::last_accepted() const {
    if (!s_) return std::nullopt;
    std::lock_guard lk(s_->m);
    return s_->last_accepted;
}

int Listener::fileno() const {
    if (closed()) throw UsageError("multiproc: the listener is closed");
    return s_->fd.get();
}

// --- Client -------------------------------------------------------------------------------------

Connection Client(const Address& address, std::optional<std::string> authkey, AuthOptions auth) {
    UniqueFd fd;
    bool tcp = false;
    if (address.family() == Address::Family::tcp) {
        tcp = true;
        std::exception_ptr last;
        for (const auto& a : sys::tcp_addresses(address.host(), address.port(), false)) {
            try {
                fd = sys::connect_to(a);
                break;
            } catch (...) {
                last = std::current_exception();
            }
        }
        if (!fd) std::rethrow_exception(last);
    } else {
        fd = sys::connect_to(unix_sock_address(address));
    }
    Connection c = detail::make_peer_connection(std::move(fd), tcp, auth.trust_code);
    if (authkey) authenticate_client(c, *authkey, auth);
    return c;
}

}  // namespace mp
