// The forkserver (CPython's multiprocessing/forkserver.py, without a named socket).
//
// The server is this program re-executed (spawn-style) with argv[1] = "--multiproc-forkserver"
// and one end of a socketpair at descriptor 3. mp::init recognises the marker and runs the
// server loop, single-threaded, before any of main's work: each child it forks is a copy of a
// small clean process, and forking it needs no warning about threads.
//
// The control channel is that socketpair, inherited by the server alone: no path in the file
// system, no abstract name, so no other user or process can ask the server to fork (Python's
// forkserver listened on a named socket without authentication until 3.14, gh-97514).
//
// A request, client -> server: one message on the control socket, a SOCK_SEQPACKET pair (the
// kernel keeps message boundaries, so a malformed request is one message, refused alone):
//   +----------+----------+------------+---------------------------------------+
//   | u32 kind | u32 zero | u64 length | bootstrap record (spawn.hpp) if inline |
//   +----------+----------+------------+---------------------------------------+
//   SCM_RIGHTS: [reply socket, the record's memfd (kind memfd only), call fds...]
// kind inline: the record follows (up to kInlineRecord bytes); kind memfd: the record is the
// first `length` bytes of a memfd (a message cannot exceed the socket's buffer). Lengths are
// checked against kMaxBootstrap before anything is allocated.
// The reply socket is one end of a socketpair made per child; over it the server answers
//   i32 pid (or -errno when fork failed,    with the child's pidfd attached (SCM_RIGHTS)
//       -EBADMSG for a malformed request)
//   i32 wait status (as waitpid reports it) once the server has reaped the child
// and then closes it. A malformed request costs the server nothing but the answer: it serves
// on. The client keeps the other end: EOF without a status means the server
// died; the child's fate is then read from its pidfd (exit code 255 as in Python).
//
// Speed: the server is started with LD_BIND_NOW=1 (removed from its environment again at once
// unless the program had set it), and warms the module table before serving: a child it forks
// then finds every function bound and the tables built. A lazily bound call in a fork child
// makes the dynamic linker walk symbol tables the child has not paged in yet, and the module
// scan reads /proc; both cost more than the rest of a no-op child.
//
// Lifetime: started on first use; it exits when the control socket reaches EOF (every copy of
// the program's end closed: the program exited, died, or called stop_forkserver()), after
// SIGKILLing its daemonic children (a daemonic child must not outlive the program). Its other
// children live on, as Python's do. A server that died is noticed on next use (its pidfd is
// readable), reaped, and restarted.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "multiproc/context.hpp"
#include "multiproc/detail/fd.hpp"
#include "spawn.hpp"

namespace mp::detail {

/// The fixed head of a request message (host byte order).
struct ForkRequestHead {
    std::uint32_t kind;      ///< kInlineRequest or kMemfdRequest
    std::uint32_t reserved;  ///< zero
    std::uint64_t length;    ///< the bootstrap record's length
};
inline constexpr std::uint32_t kInlineRequest = 1, kMemfdRequest = 2;
/// Records up to this length travel inside the request message.
inline constexpr std::size_t kInlineRecord = std::size_t{32} << 10;

/// A request message as the server reads it (see parse_fork_request).
struct ForkRequest {
    bool in_memfd = false;              ///< the record is in descriptor 1 (after the reply socket)
    std::uint64_t length = 0;           ///< the record's length
    std::span<const std::byte> record;  ///< the record itself when inline
    std::size_t call_fds = 0;           ///< descriptors of the call (after reply socket and memfd)
};
/// Checks one request message that arrived with `nfds` descriptors: its head, its length
/// against kMaxBootstrap and the message, its descriptors (mp::DecodeError when malformed).
ForkRequest parse_fork_request(std::span<const std::byte> msg, std::size_t nfds);
/// Decodes a request's record and checks that it expects the request's call descriptors.
ChildBootstrap decode_fork_record(std::span<const std::byte> record, const ForkRequest& r);

/// Testing hook: sends one raw message (any bytes, any descriptors) on this program's control
/// socket, starting the server if needed, as a hostile client would.
void forkserver_send_raw(std::span<const std::byte> msg, std::span<const int> fds);

/// A child the forkserver forked for this program: its pid, a pidfd, and the status socket.
struct ServerChild {
    pid_t pid = 0;
    UniqueFd pidfd;
    UniqueFd status;
};

/// Asks this program's forkserver (starting or restarting it as needed) to fork a child that
/// runs `bootstrap` (spawn.hpp's record) with `fds`. mp::ProcessError when the server cannot.
ServerChild forkserver_fork(std::span<const std::byte> bootstrap, std::span<const int> fds);

/// The server loop (called by mp::init in the forkserver process, with its argv). Never returns.
[[noreturn]] void forkserver_main(int argc, char** argv) noexcept;

// forkserver_pid() and stop_forkserver() are declared in multiproc/context.hpp (testing hooks).
// Stopping the server lets its children run on, except daemonic ones (SIGKILLed as it exits).

}  // namespace mp::detail
