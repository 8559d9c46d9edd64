// The engine's transport: carries frames (frame.hpp) between the supervisor and one worker. The
// supervisor drives its end without ever blocking (send_some, receive_some, poll_entry); a worker
// drives its end blocking (send_all, receive_frame). SocketTransport carries the frames over an
// AF_UNIX stream socket with descriptors beside the bytes; a transport over MPI implements the
// same calls.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "frame.hpp"
#include "multiproc/detail/fd.hpp"
#include "sys/io.hpp"  // pollfd

namespace mp::detail::wire {

/// Frames waiting to be sent: whole frames appended to `bytes`, with the descriptors they carry
/// in `fds` (borrowed: they must stay open until sent).
struct FrameOutbox {
    std::vector<std::byte> bytes;
    std::size_t sent = 0;
    std::vector<int> fds;

    /// True while some bytes are still to be sent.
    [[nodiscard]] bool pending() const noexcept { return sent < bytes.size(); }
};

/// One end of the frame link between the supervisor and a worker.
class Transport {
public:
    virtual ~Transport() = default;

    /// Frames to send: append to it, then send_some() or send_all().
    FrameOutbox& out() noexcept { return out_; }
    /// Frames received: take them with in().next().
    FrameInbox& in() noexcept { return in_; }
    /// True once the peer is gone (end of stream, or a send to it failed).
    [[nodiscard]] bool closed() const noexcept { return closed_; }

    /// Sends what the peer accepts now, without blocking.
    virtual void send_some() = 0;
    /// What one receive_some found.
    enum class Received {
        nothing,  ///< nothing was there (or the peer is gone: closed())
        some,     ///< bytes, fewer than there was room for: most likely all there was
        filled,   ///< as many bytes as there was room for: more may be waiting
    };
    /// One read of what has arrived, without blocking, into in().
    virtual Received receive_some() = 0;
    /// The descriptor and events a supervisor's poll waits on for this link (POLLOUT while
    /// output is pending).
    [[nodiscard]] virtual pollfd poll_entry() const = 0;

    /// Sends every pending frame, blocking (mp::EOFError when the peer is gone).
    virtual void send_all() = 0;
    /// Blocks until in() holds a whole frame: false at the end of the stream.
    virtual bool receive_frame(Frame& f) = 0;

protected:
    FrameOutbox out_;
    FrameInbox in_;
    bool closed_ = false;
};

/// Frames over an AF_UNIX stream socket (owned), descriptors by SCM_RIGHTS. `who` names the
/// peer in protocol errors.
std::unique_ptr<Transport> socket_transport(UniqueFd sock, const char* who);

}  // namespace mp::detail::wire
