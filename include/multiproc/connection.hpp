// multiproc connection: Pipe, Connection and wait (Python's multiprocessing.connection).
//
// A Connection is one end of a bidirectional (or one-way) byte stream between processes that
// carries whole messages. Messages are framed exactly as Python frames them, so a Python
// `multiprocessing.connection.Connection` on the other end of the descriptor understands
// send_bytes/recv_bytes:
//
//   +----------------+-------------------------+        payload <= 0x7fffffff bytes
//   | i32 big-endian |  payload (n bytes)      |
//   |       n        |                         |
//   +----------------+-------------------------+
//   +----------------+------------------+--------------------+   larger payloads
//   | i32 = -1       | u64 big-endian n | payload (n bytes)  |
//   +----------------+------------------+--------------------+
//
// send<T>/recv<T> carry values through the codec (multiproc/reduction.hpp) inside such a
// frame; descriptors of handles in the value (a Connection, later Queue, Lock, ...) travel
// beside the bytes with SCM_RIGHTS in the same frame.
//
// Across processes: a Connection is a handle (DESIGN.md 8). Copies share one descriptor and one
// state, as Python references do; closing any copy closes them all; the descriptor closes when
// the last copy goes. A Connection crosses processes itself: under fork the child has its own
// copy of the descriptor; sent through another Connection (or passed to a Process) the
// receiver gets a duplicate of the descriptor, so both processes hold the same socket.
// Both Pipe() kinds are AF_UNIX SOCK_STREAM socket pairs (the one-way kind has the unused
// directions shut down): every send uses MSG_NOSIGNAL, so a vanished reader never raises
// SIGPIPE; it is an mp::EOFError in the sender instead.
//
// Receiving never trusts the length header: memory grows as payload bytes actually arrive,
// so a lying or corrupt header costs at most what the sender really sent (or, at most, the size
// of the largest message this connection has already received whole).
//
// Thread safety: none for one connection (as in Python). Two threads may use two different
// connections freely, but using one connection (or copies of it) from two threads at once
// needs the caller's own lock.
//
// Blocking: send* blocks until the whole frame is handed to the kernel (the peer may have to
// read first); recv* block until a whole message has arrived or the peer is gone; poll and
// wait block at most for their timeout. A signal handler does not end any of them (PEP 475:
// they go on against the same deadline). Ctrl-C under an mp::SigintGuard makes recv* (while no
// byte of the next message has arrived), poll and wait throw mp::KeyboardInterrupt; a message
// that has begun is received whole, and send* always completes, so the stream stays framed.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "multiproc/detail/fd.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/reduction.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

namespace py {
class object;
}

namespace detail {
/// The pickle codec behind Connection::send_py/recv_py, defined in multiproc/pickle.hpp: using
/// them without including it is a compile error naming this type (incomplete).
template <class T>
struct PyCodec;
struct ConnectionState;

/// One received frame: its payload (valid until the next receive on the connection) and the
/// descriptors that came with it.
struct ReceivedFrame {
    std::span<const std::byte> bytes;
    std::vector<UniqueFd> fds;
    bool refuse_code = false;  // from a peer not trusted to name code (see make_peer_connection)
};
}  // namespace detail

class Connection;
namespace detail {
/// A Connection over a socket reached through a Listener or Client: unless trust_code, a
/// value from the peer that names code is refused; over TCP no descriptor can travel.
Connection make_peer_connection(UniqueFd fd, bool tcp, bool trust_code);
}  // namespace detail

/// One end of a Pipe (Python's multiprocessing.connection.Connection). A cheap, shared handle.
class Connection {
public:
    /// A closed connection (what a default-constructed handle is, e.g. before decoding into it).
    Connection() noexcept = default;
    /// Takes ownership of a connected AF_UNIX stream socket; readable/writable as given.
    explicit Connection(detail::UniqueFd fd, bool readable = true, bool writable = true);
    /// Takes ownership of an existing connected stream socket `fd` (Python's
    /// Connection(handle)), for example one end of a socketpair made by other code.
    explicit Connection(int fd, bool readable = true, bool writable = true)
        : Connection(detail::UniqueFd(fd), readable, writable) {}

    /// Sends one value through the codec; descriptors of handles inside travel with it.
    /// Throws mp::UsageError on a closed or read-only end, mp::EOFError when the peer is gone.
    template <class T>
    void send(const T& value) {
        Encoder e = begin_send_();
        e(value);
        finish_send_(e);
    }

    /// Receives one value sent with send<T>; blocks until it arrives. mp::EOFError when the peer
    /// closed, mp::DecodeError when the bytes are not a T.
    template <class T>
    T recv() {
        detail::ReceivedFrame f = recv_frame_();
        Decoder d = frame_decoder_(f);
        return detail::decode_rest<T>(d);
    }

    /// Sends `value` pickled (default protocol: mp::pickle::default_protocol), as Python's
    /// Connection.send(obj) does, so that a Python peer's recv() returns it. Needs
    /// multiproc/pickle.hpp (not in the umbrella header); types and errors in docs/pickle.md.
    template <class T, class Codec = detail::PyCodec<T>>
    void send_py(const T& value, std::optional<int> protocol = {}) {
        send_bytes(Codec::dumps(value, protocol));
    }
    /// Receives one message pickled by a Python peer's send(obj) (or by send_py) as a T, or as
    /// a py::object when its shape is not known; mp::DecodeError for a bad or unexpected pickle
    /// (the connection stays usable). Needs multiproc/pickle.hpp.
    template <class T = py::object, class Codec = detail::PyCodec<T>>
    T recv_py() {
        return Codec::loads(recv_bytes());
    }

    /// Sends buf[offset, offset + size) as one message (size defaults to the rest of buf).
    void send_bytes(std::span<const std::byte> buf, std::size_t offset = 0,
                    std::optional<std::size_t> size = {});
    /// Sends the characters s[offset, offset + size) as one message.
    void send_bytes(std::string_view s, std::size_t offset = 0,
                    std::optional<std::size_t> size = {});
    /// Sends the bytes of a contiguous range of trivially copyable values; offset and size count
    /// bytes, as in Python (where a buffer is cast to bytes first).
    template <std::ranges::contiguous_range R>
    requires std::ranges::sized_range<R> &&
        std::is_trivially_copyable_v<std::ranges::range_value_t<R>> &&
        (!std::is_convertible_v<const R&, std::span<const std::byte>>)&&(
            !std::is_convertible_v<
                const R&, std::string_view>)void send_bytes(const R& range, std::size_t offset = 0,
                                                            std::optional<std::size_t> size = {}) {
        send_bytes(std::as_bytes(std::span(std::ranges::data(range), std::ranges::size(range))),
                   offset, size);
    }

    /// Receives one message; blocks until it arrives. mp::EOFError when the peer closed. A
    /// message longer than maxlength is mp::ProcessError, and closes this connection (the rest
    /// of that message is never read, so the stream position is lost).
    std::vector<std::byte> recv_bytes(std::optional<std::size_t> maxlength = {});
    /// Receives one message into buf at offset and returns its length. When it does not fit,
    /// throws mp::BufferTooShort carrying the whole message (which is consumed).
    std::size_t recv_bytes_into(std::span<std::byte> buf, std::size_t offset = 0);

    /// True when a message (or the peer's end of file) is ready to read: waits up to `timeout`
    /// (zero: just look; mp::forever: until then).
    [[nodiscard]] bool poll(Timeout timeout = std::chrono::nanoseconds(0));

    /// Closes the descriptor for every copy of this handle; closing twice is harmless.
    void close() noexcept;
    /// True once closed (or for a default-constructed handle).
    [[nodiscard]] bool closed() const noexcept;
    /// True when this end may receive.
    [[nodiscard]] bool readable() const noexcept;
    /// True when this end may send.
    [[nodiscard]] bool writable() const noexcept;
    /// The descriptor (still owned by the connection); mp::UsageError when closed.
    [[nodiscard]] int fileno() const;

    /// Codec hook: the descriptor travels beside the bytes, the direction flags in them.
    void save(Encoder& e) const;
    /// Codec hook: becomes a handle to the received descriptor.
    void load(Decoder& d);

    /// Two handles are equal when they share the same state (copies of one another).
    friend bool operator==(const Connection& a, const Connection& b) noexcept {
        return a.s_ == b.s_;
    }

private:
    friend Connection detail::make_peer_connection(detail::UniqueFd fd, bool tcp, bool trust_code);
    Encoder begin_send_() const;
    void finish_send_(Encoder& e) const;
    detail::ReceivedFrame recv_frame_() const;
    // A decoder of f's payload and descriptors (out of line: recv<T> compiles less).
    static Decoder frame_decoder_(detail::ReceivedFrame& f);

    std::shared_ptr<detail::ConnectionState> s_;
};

/// A connected pair (Python's multiprocessing.Pipe). duplex: both ends send and receive;
/// otherwise the first end only receives and the second only sends.
std::pair<Connection, Connection> Pipe(bool duplex = true);

namespace detail {
template <class T>
concept has_sentinel = requires(T& t) {
    { t.sentinel() } -> std::convertible_to<int>;
};
template <class T>
concept has_fileno = requires(T& t) {
    { t.fileno() } -> std::convertible_to<int>;
};
}  // namespace detail

/// Something mp::wait can wait for: a Connection (ready when a message or end of file is there),
/// an object with a sentinel() descriptor (a Process: ready when it ended), a Listener (ready
/// when a client waits), or a raw descriptor (ready when readable or hung up).
class Waitable {
public:
    /// A connection (a shared handle to it is kept).
    Waitable(const Connection& c) : conn_(c), is_conn_(true), fd_(-1) {}  // NOLINT: implicit
    /// Any object with a sentinel() member returning a descriptor, such as mp::Process.
    template <class T>
    requires detail::has_sentinel<T> &&(!std::same_as<std::remove_cvref_t<T>, Waitable>)
        Waitable(T&& object)  // NOLINT: implicit on purpose
        : fd_(static_cast<int>(object.sentinel())) {}
    /// Any other object with a fileno() member, such as mp::Listener (ready when a client
    /// waits to be accepted).
    template <class T>
    requires detail::has_fileno<T> &&
        (!detail::has_sentinel<T>)&&(!std::same_as<std::remove_cvref_t<T>, Waitable>)&&(
            !std::same_as<std::remove_cvref_t<T>, Connection>)
            Waitable(T&& object)  // NOLINT: implicit on purpose
        : fd_(static_cast<int>(object.fileno())) {}
    /// A raw descriptor (not owned).
    Waitable(int fd) noexcept : fd_(fd) {}  // NOLINT: implicit on purpose

    /// The descriptor to wait on (mp::UsageError for a closed connection).
    [[nodiscard]] int fileno() const { return is_conn_ ? conn_.fileno() : fd_; }

private:
    Connection conn_;  // when is_conn_
    bool is_conn_ = false;
    int fd_;
};

/// Waits until at least one object is ready or the timeout passes (Python's
/// multiprocessing.connection.wait); returns the indices of the ready objects, in order,
/// empty on timeout.
std::vector<std::size_t> wait(std::span<const Waitable> objects, Timeout timeout = forever);
/// wait() over a braced list: `mp::wait({a, b, p}, 1s)`.
std::vector<std::size_t> wait(std::initializer_list<Waitable> objects, Timeout timeout = forever);

}  // namespace mp
