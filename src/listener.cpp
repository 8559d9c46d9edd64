#include "multiproc/listener.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
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
    if (text.front() == '@' || text.front() == '\0')
        return abstract_socket(std::string(text.substr(1)));
    // TCP: "host:port" or "[v6 literal]:port", the port all digits.
    const auto colon = text.rfind(':');
    if (colon != std::string_view::npos && colon + 1 < text.size() &&
        text.find('/') == std::string_view::npos) {
        const std::string_view port_text = text.substr(colon + 1);
        unsigned port = 0;
        const auto [end, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec == std::errc() && end == port_text.data() + port_text.size() && port <= 65535) {
            std::string_view host = text.substr(0, colon);
            if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
                host = host.substr(1, host.size() - 2);
            return tcp(std::string(host), static_cast<std::uint16_t>(port));
        }
    }
    return unix_socket(std::string(text));
}

std::string Address::to_string() const {
    switch (family_) {
        case Family::unix_path: return host_;
        case Family::abstract: return "@" + host_;
        case Family::tcp:
            return (host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_) + ":" +
                   std::to_string(port_);
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

// The handshake's messages, framed as a Connection frames them (a 4-byte big-endian length,
// then the bytes) but moved on the socket directly, so that the exchange costs few system calls
// and sets no socket option (each system call and each wake-up is a large share of the time a
// connection takes to set up):
// - queued messages leave together in one sendmsg, when the channel must wait for the peer
//   (or at the end): the server's verdict and its answer, the client's answer and challenge;
// - one recv takes whatever has arrived, up to two messages. Before it is authenticated a peer
//   sends at most two messages before it waits for us (our client sends its answer and its own
//   challenge together), so a read never reaches past the handshake;
// - the server reads the client's verdict, the last message, exactly (4 + 9 bytes), since the
//   client's first message may follow it at once.
// One deadline, AuthOptions::handshake_timeout from the start, covers the whole exchange.
class Channel {
public:
    Channel(int fd, std::chrono::milliseconds timeout)
        : fd_(fd), deadline_(timeout.count() > 0 ? detail::Deadline(Timeout(timeout))
                                                 : detail::Deadline::never()) {}

    // Queues one message.
    void queue(std::string_view message) {
        unsigned char h[4];
        const auto n = static_cast<std::uint32_t>(message.size());
        for (int i = 0; i < 4; ++i) h[i] = static_cast<unsigned char>(n >> (24 - 8 * i));
        out_.append(reinterpret_cast<const char*>(h), 4).append(message);
    }

    // Sends what is queued.
    void flush() {
        if (out_.empty()) return;
        iovec iov{out_.data(), out_.size()};
        if (!sys::send_before(fd_, &iov, 1, deadline_, sys::Interruptible::yes)) timed_out();
        out_.clear();
    }

    // The next message, of at most max_len bytes, read no further than `read_ahead` bytes from
    // its start (valid until the next call). Flushes the queue before it waits.
    std::string_view next(std::size_t max_len = detail::kMaxHandshakeMessage,
                          std::size_t read_ahead = kBuffer) {
        std::memmove(in_.data(), in_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
        for (;;) {
            if (end_ >= 4) {
                const auto* h = reinterpret_cast<const unsigned char*>(in_.data());
                const std::uint32_t n = std::uint32_t{h[0]} << 24 | std::uint32_t{h[1]} << 16 |
                                        std::uint32_t{h[2]} << 8 | h[3];
                if (n > max_len)
                    throw AuthenticationError(
                        "multiproc: authentication failed: the peer sent a message of " +
                        std::to_string(static_cast<std::int32_t>(n)) +
                        " bytes during the handshake (at most " + std::to_string(max_len) + ")");
                if (end_ >= 4 + n) {
                    begin_ = 4 + n;
                    return {in_.data() + 4, n};
                }
            }
            flush();
            const auto got =
                sys::recv_before(fd_, in_.data() + end_, std::min(read_ahead, kBuffer) - end_,
                                 deadline_, sys::Interruptible::yes);
            if (!got) timed_out();
            if (*got == 0)
                throw AuthenticationError(
                    "multiproc: authentication failed: the peer closed the connection "
                    "during the handshake");
            end_ += *got;
        }
    }

    // Sends what is queued, unless the peer sent more than the handshake: then it is refused.
    void finish() {
        if (end_ > begin_)
            throw AuthenticationError(
                "multiproc: authentication failed: the peer sent data before the "
                "handshake ended");
        flush();
    }

private:
    static constexpr std::size_t kBuffer = 2 * (4 + detail::kMaxHandshakeMessage);

    [[noreturn]] static void timed_out() {
        throw AuthenticationError(
            "multiproc: authentication failed: the peer did not complete the handshake in time");
    }

    int fd_;
    detail::Deadline deadline_;
    std::string out_;
    std::array<char, kBuffer> in_{};
    std::size_t begin_ = 0, end_ = 0;
};

// Runs `exchange` over a Channel on c's socket; every failure is an AuthenticationError and
// closes c, so nothing more is read from that peer.
template <class F>
void handshake(Connection& c, const AuthOptions& auth, F&& exchange) {
    const int fd = c.fileno();
    try {
        if (!c.readable() || !c.writable())
            throw UsageError(
                "multiproc: authentication needs a connection that both reads and writes");
        Channel ch(fd, auth.handshake_timeout);
        exchange(ch);
        ch.finish();
    } catch (const AuthenticationError&) {
        c.close();
        throw;
    } catch (const std::exception& e) {
        c.close();
        throw AuthenticationError(std::string("multiproc: authentication failed: ") + e.what());
    }
}

// Tells the peer it failed (if it still listens), then throws `error`.
[[noreturn]] void refuse(Channel& ch, const AuthenticationError& error) {
    ch.queue(detail::kFailure);
    try {
        ch.flush();
    } catch (const ProcessError&) {
        // The peer is gone or stalled: the verdict is ours to throw all the same.
    } catch (const std::system_error&) {
    }
    throw error;
}

// Python's deliver_challenge, from after the challenge was sent.
void check_response(Channel& ch, std::string_view key, const std::string& message) {
    const std::string_view response = ch.next();
    bool ok = false;
    try {
        ok = detail::response_is_valid(key, message, response);
    } catch (const AuthenticationError& e) {
        refuse(ch, e);
    }
    if (!ok)
        refuse(ch, AuthenticationError(
                       "multiproc: authentication failed: the digest received was wrong"));
    ch.queue(detail::kWelcome);
}

// Queues a fresh challenge; returns it for check_response.
std::string send_challenge(Channel& ch, AuthDigest digest) {
    std::string message = detail::make_challenge(digest);
    ch.queue(std::string(detail::kChallenge) + message);
    return message;
}

// Python's answer_challenge, up to (not including) reading the verdict.
void answer(Channel& ch, std::string_view key) {
    const std::string_view message = ch.next();
    if (message.substr(0, detail::kChallenge.size()) != detail::kChallenge)
        throw AuthenticationError(
            "multiproc: authentication failed: protocol error, expected a challenge");
    ch.queue(detail::respond_to_challenge(key, message.substr(detail::kChallenge.size())));
}

// `last`: the verdict ends the peer's part of the handshake, and what follows it is not ours.
void expect_welcome(Channel& ch, bool last) {
    const std::string_view verdict =
        last ? ch.next(detail::kWelcome.size(), 4 + detail::kWelcome.size()) : ch.next();
    if (verdict != detail::kWelcome)
        throw AuthenticationError("multiproc: authentication failed: the digest sent was rejected");
}

}  // namespace

void authenticate_server(Connection& c, std::string_view authkey, AuthOptions auth) {
    handshake(c, auth, [&](Channel& ch) {
        check_response(ch, authkey, send_challenge(ch, auth.digest));
        answer(ch, authkey);
        expect_welcome(ch, true);
    });
}

void authenticate_client(Connection& c, std::string_view authkey, AuthOptions auth) {
    // Our challenge goes out right behind our answer, before the server's verdict: the server
    // reads it next anyway (Python's Listener too), and it saves two one-way trips, a third of
    // the handshake's wake-ups. A server that refuses our answer never reads it.
    handshake(c, auth, [&](Channel& ch) {
        answer(ch, authkey);
        const std::string ours = send_challenge(ch, auth.digest);
        expect_welcome(ch, false);
        check_response(ch, authkey, ours);
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

Listener::Listener(const Address& address, int backlog, std::optional<std::string> authkey,
                   AuthOptions auth) {
    auto s = detail::make_owned<detail::ListenerState>(address, std::move(authkey), auth);
    if (address.family() == Address::Family::tcp) {
        std::exception_ptr last;
        for (const auto& a : sys::tcp_addresses(address.host(), address.port(), true)) {
            try {
                s->fd = sys::listen_on(a, backlog, {});
                s->address = address_of(sys::local_address(s->fd.get()), address);
                if (!address.host().empty())
                    s->address = Address::tcp(address.host(), s->address.port());
                break;
            } catch (...) {
                last = std::current_exception();
            }
        }
        if (!s->fd) std::rethrow_exception(last);
    } else {
        const bool path = address.family() == Address::Family::unix_path;
        s->fd = sys::listen_on(unix_sock_address(address), backlog,
                               path ? address.host() : std::string());
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
        static_cast<void>(sys::wait_readable(s_->fd.get(), detail::Deadline::never(),
                                             sys::Interruptible::yes));
        fd = sys::accept_on(s_->fd.get(), peer);
    } catch (const std::system_error&) {
        if (closed() || errno == EINVAL)
            throw ProcessError("multiproc: accept: the listener was closed");
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
