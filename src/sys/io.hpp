// Blocking I/O on descriptors: whole reads and writes (short transfers loop, EINTR retried),
// readiness waits against one deadline, and creation of close-on-exec pipes and socket pairs.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "multiproc/detail/fd.hpp"
#include "multiproc/timeout.hpp"
#include "sys/signals.hpp"

namespace mp::sys {

using detail::UniqueFd;

/// Reads up to n bytes, looping until n or end of file; returns the count read (< n at EOF).
std::size_t read_full(int fd, void* buf, std::size_t n);
/// Writes all n bytes (loops on short writes; EPIPE becomes mp::EOFError).
void write_all(int fd, const void* buf, std::size_t n);
/// Drops the first `done` bytes from an iovec array (after a short write).
void advance_iov(iovec*& iov, int& iovcnt, std::size_t done) noexcept;
/// Writes every byte of every iovec (loops on short writes; EPIPE becomes mp::EOFError).
void writev_all(int fd, iovec* iov, int iovcnt);
/// Waits until fd is readable (or hung up); false when the deadline passed first. Signals as
/// poll_until.
[[nodiscard]] bool wait_readable(int fd, detail::Deadline deadline,
                                 Interruptible i = Interruptible::no);
/// ppoll(2) over fds (the deadline kept to the nanosecond), retried after handled signals against the deadline (sys::wait_until);
/// returns the number of ready entries, 0 when the deadline passed. With Interruptible::yes a
/// SIGINT under mp::SigintGuard throws mp::KeyboardInterrupt.
int poll_until(pollfd* fds, std::size_t n, detail::Deadline deadline,
               Interruptible i = Interruptible::no);

/// A close-on-exec pipe: [0] reads, [1] writes.
struct PipeFds {
    UniqueFd read, write;
};
/// pipe2(O_CLOEXEC).
PipeFds make_pipe();
/// socketpair(AF_UNIX, type | SOCK_CLOEXEC): SOCK_STREAM, or SOCK_SEQPACKET (message boundaries).
PipeFds make_socketpair(int type = SOCK_STREAM);
/// Sets or clears O_NONBLOCK.
void set_nonblocking(int fd, bool on);

/// isatty(fd): whether fd is a terminal.
[[nodiscard]] bool is_terminal(int fd) noexcept;

/// One write of `msg` to stderr (EINTR retried, failure ignored): a diagnostic of last resort,
/// usable where nothing may throw or allocate.
void write_stderr(std::string_view msg) noexcept;

/// One read(2) of at most n bytes, EINTR retried: read's result (-1 with errno set). Never throws.
ssize_t read_once(int fd, void* buf, std::size_t n) noexcept;

/// One write(2) of at most n bytes, EINTR retried: write's result (-1 with errno set). Never
/// throws, never allocates (usable just before _exit).
ssize_t write_once(int fd, const void* buf, std::size_t n) noexcept;
/// One pread(2) of at most n bytes at `offset`, EINTR retried: the byte count (0 at end of
/// file); throws std::system_error.
std::size_t pread_some(int fd, void* buf, std::size_t n, std::uint64_t offset);

}  // namespace mp::sys
