// multiproc listener: Listener, Client and Address (Python's multiprocessing.connection
// Listener / Client), with Python's authentication handshake.
//
// A Listener owns a listening socket; accept() returns a Connection to the next client, and
// mp::Client(address) connects to one. The connections are ordinary mp::Connection objects
// speaking Python's framing, so a Python `multiprocessing.connection.Client` can talk to a
// multiproc Listener and the other way round (send_bytes / recv_bytes; send<T> / recv<T> need a
// multiproc peer, since Python pickles).
//
// Addresses (mp::Address): a Unix socket path (created with mode 0600, removed by close()), a
// Linux abstract name (no file at all), or TCP `host:port` over IPv4 or IPv6 (port 0 picks a
// free port; address() then tells which). A string converts: "host:port" and "[v6]:port" are
// TCP, a string starting with '@' or a NUL byte is an abstract name, anything else a path.
//
// Authentication (authkey): Python's HMAC challenge and response, byte for byte, in both
// directions (the server challenges first, then the client). multiproc sends Python 3.12's form
// by default (`#CHALLENGE#{sha256}` + 40 random bytes, answered by `{sha256}` + HMAC-SHA256 of
// the whole challenge) and answers both forms, including Python <= 3.11's 20-byte challenge
// (answered with the raw 16-byte HMAC-MD5); Python 3.11 peers answer the 3.12 form with
// HMAC-MD5, which is accepted as Python 3.12 accepts it. Digests are compared in constant time.
// An empty key is a real key; no key (std::nullopt) means no authentication, as Python's
// authkey=None. Until authenticated, a peer may send only messages of at most 256 bytes;
// anything longer, a wrong digest, or a handshake that stalls longer than the handshake
// timeout closes that connection with mp::AuthenticationError, and nothing else is read from
// that peer. A wrong key is mp::AuthenticationError on both sides.
//
// Trust: connections from a Listener or Client are not trusted to name code unless
// AuthOptions::trust_code says so. A value whose decoding would resolve a function identity
// (a shipped callable, a Barrier's action) is mp::DecodeError on them, before any library is
// loaded or any address looked at; plain data crosses as usual. Descriptors cannot cross TCP.
//
// Thread safety: a Listener may be used from several threads (accept is serialised by the
// kernel); each Connection follows Connection's rules. close() from another thread makes a
// blocked accept() fail with mp::ProcessError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "multiproc/connection.hpp"
#include "multiproc/detail/owned.hpp"
#include "multiproc/detail/std_parts.hpp"

namespace mp {

/// Where a Listener listens and a Client connects.
class Address {
public:
    /// The kinds of address.
    enum class Family { unix_path, abstract, tcp };

    /// A Unix socket at `path`.
    static Address unix_socket(std::string path);
    /// A Linux abstract socket name (without the leading NUL byte).
    static Address abstract_socket(std::string name);
    /// TCP at host:port (IPv4 or IPv6 literal, or a name; port 0 lets a Listener pick).
    static Address tcp(std::string host, std::uint16_t port);
    /// Parses "host:port", "[v6]:port" (TCP), "@name" or "\0name" (abstract), else a path.
    static Address parse(std::string_view text);

    /// Address::parse(text).
    Address(const char* text) : Address(parse(text)) {}  // NOLINT: implicit on purpose
    /// Address::parse(text).
    Address(const std::string& text) : Address(parse(text)) {}  // NOLINT: implicit on purpose

    /// The kind of address.
    [[nodiscard]] Family family() const noexcept { return family_; }
    /// The path, the abstract name, or the TCP host.
    [[nodiscard]] const std::string& host() const noexcept { return host_; }
    /// The TCP port (0 for other kinds).
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    /// The address as text that parse() reads back ("@name" for abstract names).
    [[nodiscard]] std::string to_string() const;

    friend bool operator==(const Address&, const Address&) = default;

private:
    Address(Family f, std::string host, std::uint16_t port)
        : family_(f), host_(std::move(host)), port_(port) {}
    Family family_;
    std::string host_;
    std::uint16_t port_;
};

/// Which challenge this side sends (both forms are always answered).
enum class AuthDigest {
    sha256,      ///< Python 3.12+: `{sha256}` + 40 bytes, HMAC-SHA256 (the default)
    legacy_md5,  ///< Python <= 3.11: 20 bytes, raw HMAC-MD5
};

/// How a Listener or Client authenticates and how long a handshake may take.
struct AuthOptions {
    AuthDigest digest = AuthDigest::sha256;  ///< the challenge we send
    std::chrono::milliseconds handshake_timeout = std::chrono::seconds(30);  ///< 0: none
    /// The peer may send values that name code (shipped callables, a Barrier's action): only
    /// for a peer trusted as much as this program, since decoding them loads its libraries and
    /// calls its functions. Off: such a value is mp::DecodeError and nothing is resolved.
    bool trust_code = false;
};

namespace detail {
struct ListenerState;
}

/// A listening socket that hands out authenticated Connections (Python's Listener). RAII: the
/// destructor closes it (and removes a Unix socket's file).
class Listener {
public:
    /// Listens at `address` with room for `backlog` pending clients; with an authkey, every
    /// accepted client must prove it holds the same key. std::system_error (EADDRINUSE, ...)
    /// when it cannot listen.
    explicit Listener(const Address& address, int backlog = 128,
                      std::optional<std::string> authkey = std::nullopt, AuthOptions auth = {});
    Listener(Listener&&) noexcept;
    Listener& operator=(Listener&&) noexcept;
    ~Listener();

    /// Waits for the next client, authenticates it, and returns its Connection; throws
    /// mp::AuthenticationError when that client fails authentication (the Listener stays
    /// usable), mp::ProcessError once closed.
    Connection accept();
    /// Stops listening (removing a Unix socket's file); idempotent.
    void close() noexcept;
    /// True once closed.
    [[nodiscard]] bool closed() const noexcept;
    /// The address listened at (a TCP port 0 resolved to the port the kernel chose).
    [[nodiscard]] const Address& address() const;
    /// The address of the last client accepted (a Unix client has an empty path).
    [[nodiscard]] std::optional<Address> last_accepted() const;
    /// The listening descriptor (readable when a client waits), for mp::wait.
    [[nodiscard]] int fileno() const;

private:
    detail::Owned<detail::ListenerState> s_;
};

/// Connects to a Listener at `address` (Python's Client) and, with an authkey, answers its
/// challenge and challenges it back. std::system_error (ECONNREFUSED, ENOENT, ...) when
/// nobody listens; mp::AuthenticationError when the keys differ.
Connection Client(const Address& address, std::optional<std::string> authkey = std::nullopt,
                  AuthOptions auth = {});

/// Answers the challenge a peer sends on `c`, then challenges it (Python's
/// answer_challenge + deliver_challenge, the client's side). mp::AuthenticationError on failure.
void authenticate_client(Connection& c, std::string_view authkey, AuthOptions auth = {});
/// Challenges the peer on `c`, then answers its challenge (Python's deliver_challenge +
/// answer_challenge, the server's side). mp::AuthenticationError on failure.
void authenticate_server(Connection& c, std::string_view authkey, AuthOptions auth = {});

}  // namespace mp
