#include "multiproc/connection.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "sys/io.hpp"
#include "sys/socket.hpp"
#include "sys/stream.hpp"

namespace mp {

namespace detail {

struct ConnectionState {
    ConnectionState(UniqueFd f, bool r, bool w) : fd(std::move(f)), readable(r), writable(w) {}
    UniqueFd fd;
    bool readable;
    bool writable;
    // A peer reached through a Listener or Client: it may not name code; over TCP no
    // descriptor can travel.
    bool refuse_code = false;
    bool tcp = false;
    // Recycled between messages so that a steady stream of sends and receives does not
    // allocate: the encoder's byte buffer, and a receive buffer that is never zero-filled.
    std::vector<std::byte> send_buf;
    std::unique_ptr<std::byte[]> recv_buf;
    std::size_t recv_cap = 0;
    // The largest payload this connection has received whole. The sender has really sent that
    // much before, so trusting a header up to it cannot be abused beyond what was already
    // paid for, and it lets a stream of large messages be read with one allocation each.
    std::size_t high_water = 0;
};

}  // namespace detail

namespace {

using detail::ConnectionState;
using detail::UniqueFd;

constexpr std::size_t kInitialChunk = 64 * 1024;
constexpr std::size_t kKeepBuffer = 4 * 1024 * 1024;  // recycled buffers above this are freed
constexpr std::uint64_t kShortMax = 0x7fffffff;       // longer payloads use Python's long form

struct Header {
    unsigned char bytes[12];
    std::size_t len;
};

void put_be32(unsigned char* p, std::uint32_t v) {
    for (int i = 3; i >= 0; --i, v >>= 8) p[i] = static_cast<unsigned char>(v & 0xff);
}
void put_be64(unsigned char* p, std::uint64_t v) {
    for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<unsigned char>(v & 0xff);
}
std::uint32_t get_be32(const unsigned char* p) {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
std::uint64_t get_be64(const unsigned char* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
    return v;
}

// Python's framing (connection.py, Connection._send_bytes): "!i" length, or "!i" -1 followed by
// "!Q" length when the payload does not fit a signed 32-bit length.
Header make_header(std::uint64_t n) {
    Header h{};
    if (n <= kShortMax) {
        put_be32(h.bytes, static_cast<std::uint32_t>(n));
        h.len = 4;
    } else {
        put_be32(h.bytes, 0xffffffffu);
        put_be64(h.bytes + 4, n);
        h.len = 12;
    }
    return h;
}

ConnectionState& open_state(const std::shared_ptr<ConnectionState>& s) {
    if (!s || !s->fd) throw UsageError("multiproc: the connection is closed");
    return *s;
}
ConnectionState& readable_state(const std::shared_ptr<ConnectionState>& s) {
    ConnectionState& st = open_state(s);
    if (!st.readable) throw UsageError("multiproc: the connection is write-only");
    return st;
}
ConnectionState& writable_state(const std::shared_ptr<ConnectionState>& s) {
    ConnectionState& st = open_state(s);
    if (!st.writable) throw UsageError("multiproc: the connection is read-only");
    return st;
}

void send_frame(ConnectionState& s, const void* data, std::size_t n, std::span<const int> fds) {
    // Header and payload leave in one sendmsg: one system call for a small message, and a
    // Python reader never sees a frame split in two writes it would have to reassemble slowly.
    Header h = make_header(n);
    iovec iov[2] = {{h.bytes, h.len}, {const_cast<void*>(data), n}};
    sys::send_all(s.fd.get(), iov, n ? 2 : 1, fds);
}

[[noreturn]] void corrupt(ConnectionState& s, const std::string& why) {
    s.fd.reset();
    throw ProcessError("multiproc: recv: " + why + "; the connection is closed");
}

std::uint64_t recv_header(ConnectionState& s, std::vector<UniqueFd>& fds) {
    // Under mp::SigintGuard, Ctrl-C may end the wait for a message's first byte (then nothing
    // was read); once a message has begun it is read whole, so the stream stays framed.
    if (sys::sigint_armed())
        static_cast<void>(sys::wait_readable(s.fd.get(), detail::Deadline::never(),
                                             sys::Interruptible::yes));
    unsigned char h[8];
    std::size_t got = 0;
    while (got < 4) {
        // The descriptors of a frame are attached to its first bytes: they arrive here.
        std::size_t n = sys::recv_some(s.fd.get(), h + got, 4 - got, fds);
        if (n == 0) {
            if (got == 0) throw EOFError("multiproc: recv: the other end closed the connection");
            throw EOFError("multiproc: recv: the other end closed the connection in the middle of "
                           "a message header (" +
                           std::to_string(got) + " of 4 bytes arrived)");
        }
        got += n;
    }
    const auto len = static_cast<std::int32_t>(get_be32(h));
    if (len >= 0) return static_cast<std::uint64_t>(len);
    if (len != -1) corrupt(s, "corrupt message header (length " + std::to_string(len) + ")");
    std::size_t n = sys::recv_all(s.fd.get(), h, 8);
    if (n < 8)
        throw EOFError("multiproc: recv: the other end closed the connection in the middle of "
                       "a message header (" +
                       std::to_string(4 + n) + " of 12 bytes arrived)");
    return get_be64(h);
}

// Reads a payload of `size` bytes into memory obtained from grow(len, kept), which returns a
// buffer of at least len bytes holding the first `kept` bytes already read. The buffer starts
// small and doubles only as bytes really arrive, so a header announcing gigabytes costs nothing
// until gigabytes come.
template <class Grow>
void recv_payload(ConnectionState& s, std::uint64_t size, Grow&& grow) {
    if (size == 0) return;
    std::size_t cap =
        static_cast<std::size_t>(std::min<std::uint64_t>(size,
                                                         std::max(kInitialChunk, s.high_water)));
    std::byte* p = grow(cap, std::size_t{0});
    std::size_t got = 0;
    for (;;) {
        got += sys::recv_all(s.fd.get(), p + got, cap - got);
        if (got < cap)
            throw EOFError("multiproc: recv: the other end closed the connection in the middle of "
                           "a message (" +
                           std::to_string(got) + " of " + std::to_string(size) + " bytes arrived)");
        if (got == size) break;
        cap = static_cast<std::size_t>(std::min<std::uint64_t>(size, std::uint64_t{cap} * 2));
        p = grow(cap, got);
    }
    s.high_water = std::max(s.high_water, static_cast<std::size_t>(size));
}

void recv_into_vector(ConnectionState& s, std::uint64_t size, std::vector<std::byte>& out) {
    recv_payload(s, size, [&](std::size_t len, std::size_t) {
        out.resize(len);
        return out.data();
    });
}

}  // namespace

Connection::Connection(UniqueFd fd, bool readable, bool writable) {
    if (!fd) throw UsageError("multiproc: Connection needs an open descriptor");
    if (!readable && !writable)
        throw UsageError("multiproc: a connection must be readable, writable or both");
    s_ = std::make_shared<ConnectionState>(std::move(fd), readable, writable);
}

Encoder Connection::begin_send_() const {
    ConnectionState& s = writable_state(s_);
    Encoder e;
    e.bytes().swap(s.send_buf);
    e.bytes().clear();
    return e;
}

void Connection::finish_send_(Encoder& e) const {
    ConnectionState& s = writable_state(s_);  // encoding user types may have closed it
    if (s.tcp && !e.fds().empty())
        throw ProcessError("multiproc: send: a value carrying file descriptors (a Connection, "
                           "Queue, Lock, Value, ...) cannot cross a TCP connection");
    send_frame(s, e.bytes().data(), e.bytes().size(), e.fds());
    if (e.bytes().capacity() <= kKeepBuffer) s.send_buf.swap(e.bytes());
}

Decoder Connection::frame_decoder_(detail::ReceivedFrame& f) {
    Decoder d(f.bytes, f.fds);
    if (f.refuse_code) d.refuse_code();
    return d;
}

detail::ReceivedFrame Connection::recv_frame_() const {
    ConnectionState& s = readable_state(s_);
    detail::ReceivedFrame f;
    const std::uint64_t size = recv_header(s, f.fds);
    if (s.recv_cap > kKeepBuffer && size < s.recv_cap / 2) {
        s.recv_buf.reset();
        s.recv_cap = 0;
    }
    recv_payload(s, size, [&](std::size_t len, std::size_t kept) {
        if (len > s.recv_cap) {
            auto bigger = std::make_unique_for_overwrite<std::byte[]>(len);
            if (kept) std::memcpy(bigger.get(), s.recv_buf.get(), kept);
            s.recv_buf = std::move(bigger);
            s.recv_cap = len;
        }
        return s.recv_buf.get();
    });
    f.bytes = std::span<const std::byte>(s.recv_buf.get(), static_cast<std::size_t>(size));
    f.refuse_code = s.refuse_code;
    return f;
}

void Connection::send_bytes(std::string_view s, std::size_t offset,
                            std::optional<std::size_t> size) {
    send_bytes(std::as_bytes(std::span(s.data(), s.size())), offset, size);
}

void Connection::send_bytes(std::span<const std::byte> buf, std::size_t offset,
                            std::optional<std::size_t> size) {
    ConnectionState& s = writable_state(s_);
    if (offset > buf.size())
        throw UsageError("multiproc: send_bytes: offset " + std::to_string(offset) +
                         " is past the end of a buffer of " + std::to_string(buf.size()) +
                         " bytes");
    const std::size_t n = size.value_or(buf.size() - offset);
    if (n > buf.size() - offset)
        throw UsageError("multiproc: send_bytes: offset + size exceeds the buffer length");
    send_frame(s, buf.data() + offset, n, {});
}

std::vector<std::byte> Connection::recv_bytes(std::optional<std::size_t> maxlength) {
    ConnectionState& s = readable_state(s_);
    std::vector<UniqueFd> fds;  // descriptors sent along a raw message have no owner: closed
    const std::uint64_t size = recv_header(s, fds);
    if (maxlength && size > *maxlength)
        corrupt(s, "bad message length: " + std::to_string(size) + " bytes exceed maxlength " +
                       std::to_string(*maxlength));
    std::vector<std::byte> out;
    recv_into_vector(s, size, out);
    return out;
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buf, std::size_t offset) {
    ConnectionState& s = readable_state(s_);
    if (offset > buf.size())
        throw UsageError("multiproc: recv_bytes_into: offset " + std::to_string(offset) +
                         " is past the end of a buffer of " + std::to_string(buf.size()) +
                         " bytes");
    std::vector<UniqueFd> fds;
    const std::uint64_t size = recv_header(s, fds);
    if (size > buf.size() - offset) {
        std::vector<std::byte> whole;
        recv_into_vector(s, size, whole);
        throw BufferTooShort(std::move(whole));
    }
    const auto n = static_cast<std::size_t>(size);
    const std::size_t got = sys::recv_all(s.fd.get(), buf.data() + offset, n);
    if (got < n)
        throw EOFError("multiproc: recv: the other end closed the connection in the middle of "
                       "a message (" +
                       std::to_string(got) + " of " + std::to_string(n) + " bytes arrived)");
    return n;
}

bool Connection::poll(Timeout timeout) {
    ConnectionState& s = readable_state(s_);
    return sys::wait_readable(s.fd.get(), detail::Deadline(timeout), sys::Interruptible::yes);
}

void Connection::close() noexcept {
    if (!s_) return;
    s_->fd.reset();
    s_->send_buf = {};
    s_->recv_buf.reset();
    s_->recv_cap = 0;
}

bool Connection::closed() const noexcept { return !s_ || !s_->fd; }
bool Connection::readable() const noexcept { return !closed() && s_->readable; }
bool Connection::writable() const noexcept { return !closed() && s_->writable; }
int Connection::fileno() const { return open_state(s_).fd.get(); }

void Connection::save(Encoder& e) const {
    const ConnectionState& s = open_state(s_);
    e.add_fd(s.fd.get());
    const std::uint8_t flags = (s.readable ? 1 : 0) | (s.writable ? 2 : 0);
    e(flags);
}

void Connection::load(Decoder& d) {
    UniqueFd fd = d.take_fd();
    std::uint8_t flags = 0;
    d(flags);
    if (flags == 0 || flags > 3)
        throw DecodeError("multiproc: corrupt message: bad Connection direction flags");
    s_ = std::make_shared<ConnectionState>(std::move(fd), (flags & 1) != 0, (flags & 2) != 0);
}

Connection detail::make_peer_connection(UniqueFd fd, bool tcp, bool trust_code) {
    Connection c(std::move(fd));
    c.s_->refuse_code = !trust_code;
    c.s_->tcp = tcp;
    return c;
}

std::pair<Connection, Connection> Pipe(bool duplex) {
    sys::PipeFds p = sys::make_socketpair();
    if (duplex) return {Connection(std::move(p.read)), Connection(std::move(p.write))};
    // One-way, as Python's Pipe(duplex=False): the first end receives, the second sends. A
    // socket pair with the unused directions shut down (rather than pipe(2)) keeps MSG_NOSIGNAL
    // and descriptor passing available to both kinds.
    sys::shutdown_socket(p.read.get(), sys::Shutdown::writes);
    sys::shutdown_socket(p.write.get(), sys::Shutdown::reads);
    return {Connection(std::move(p.read), true, false),
            Connection(std::move(p.write), false, true)};
}

std::vector<std::size_t> wait(std::initializer_list<Waitable> objects, Timeout timeout) {
    return wait(std::span<const Waitable>(objects.begin(), objects.size()), timeout);
}

std::vector<std::size_t> wait(std::span<const Waitable> objects, Timeout timeout) {
    std::vector<pollfd> fds(objects.size());
    for (std::size_t i = 0; i < objects.size(); ++i)
        fds[i] = pollfd{objects[i].fileno(), POLLIN, 0};
    std::vector<std::size_t> ready;
    if (sys::poll_until(fds.data(), fds.size(), detail::Deadline(timeout),
                        sys::Interruptible::yes) <= 0)
        return ready;
    for (std::size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents & POLLNVAL)
            throw_os_error("multiproc: wait: not an open descriptor", EBADF);
        if (fds[i].revents) ready.push_back(i);
    }
    return ready;
}

}  // namespace mp
