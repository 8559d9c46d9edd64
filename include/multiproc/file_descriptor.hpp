// A file descriptor that can cross processes: mp::FileDescriptor, and Python's
// multiprocessing.reduction.send_handle / recv_handle.
//
// FileDescriptor is a handle (DESIGN.md 8): copies share one open descriptor, closed when the
// last copy goes. Passed to a Process (every start method), sent through a Connection or a
// Queue, or held by a user type that has `template <class Ar> void serialize(Ar& ar) { ar(fd); }`,
// it arrives as a descriptor of the receiving process that refers to the same open file
// description (the same file offset, the same socket), as SCM_RIGHTS gives it. Descriptors
// cannot cross TCP (mp::ProcessError when tried).
//
// Thread safety: copies may be used from several threads; close() races with use as close(2)
// does.
#pragma once

#include <memory>

#include "multiproc/connection.hpp"
#include "multiproc/detail/fd.hpp"
#include "multiproc/reduction.hpp"

namespace mp {

/// A shared, owned file descriptor that crosses processes. Cheap to copy.
class FileDescriptor {
public:
    /// No descriptor.
    FileDescriptor() noexcept = default;
    /// Takes ownership of `fd` (closed when the last copy goes).
    explicit FileDescriptor(int fd);
    /// A close-on-exec duplicate of `fd`, which stays the caller's (std::system_error).
    [[nodiscard]] static FileDescriptor dup_of(int fd);

    /// The descriptor (-1 when there is none); still owned by the handle.
    [[nodiscard]] int get() const noexcept { return fd_ ? fd_->get() : -1; }
    /// True when a descriptor is held.
    explicit operator bool() const noexcept { return get() >= 0; }
    /// Gives up ownership for every copy and returns the descriptor (-1 when none).
    [[nodiscard]] int release() noexcept;
    /// Closes the descriptor for every copy; harmless when none.
    void close() noexcept;

    /// Codec: the descriptor travels beside the bytes.
    void save(Encoder& e) const;
    /// Codec: a descriptor of this process referring to the same open file.
    void load(Decoder& d);

private:
    std::shared_ptr<detail::UniqueFd> fd_;
};

namespace reduction {
/// Sends a duplicate of `fd` (which stays the caller's) over `conn` (Python's send_handle;
/// `destination_pid` is accepted for Python's signature and not needed on Linux).
void send_handle(Connection& conn, int fd, pid_t destination_pid = 0);
/// Receives a descriptor sent with send_handle (Python's recv_handle), owned by the result.
[[nodiscard]] FileDescriptor recv_handle(Connection& conn);
}  // namespace reduction

}  // namespace mp
