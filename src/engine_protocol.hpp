// The engine's private protocol between the supervisor (src/engine.cpp) and a worker
// (src/worker.cpp), over one AF_UNIX stream socket per worker. Every frame:
//
//   +------------+------------+-------------+------------------+
//   | u32 kind   | u32 nfds   | u64 length  | payload (length) |   descriptors (nfds) ride with
//   +------------+------------+-------------+------------------+   the frame's first bytes
//
//   init        parent -> worker  u64 n | n bytes of the initializer call (n = 0: none);
//                                 fds: [progress slot memfd, initializer's fds...]
//   tasks       parent -> worker  u32 count | count x (u64 id | u32 nfds | u64 n | n bytes)
//   exit        parent -> worker  (empty) finish and exit 0
//   ready       worker -> parent  (empty) the initializer succeeded
//   init_failed worker -> parent  the initializer's exception (codec)
//   results     worker -> parent  u32 count | count x (u64 id | u64 ns | u32 nfds | u64 n | bytes)
//
// Host byte order: both ends are the same program. The progress slot is a page of shared
// memory where the worker publishes the task and chunk item it is running, so the supervisor
// knows exactly what a crash interrupted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "multiproc/connection.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/reduction.hpp"

namespace mp::detail::wire {

enum class Kind : std::uint32_t { init = 1, tasks = 2, exit = 3, ready = 4, init_failed = 5, results = 6 };

struct FrameHeader {
    std::uint32_t kind;
    std::uint32_t nfds;
    std::uint64_t length;
};
static_assert(sizeof(FrameHeader) == 16);

/// Frames larger than this are a protocol error (a corrupt length), not an allocation.
inline constexpr std::uint64_t max_frame = std::uint64_t{1} << 40;

/// One record of a tasks frame (ns is 0 there) or of a results frame: its descriptors are the
/// frame's [first_fd, first_fd + nfds).
struct FrameRecord {
    std::uint64_t id = 0;
    std::uint64_t ns = 0;
    std::uint32_t nfds = 0;
    std::size_t first_fd = 0;
    std::span<const std::byte> bytes;
};

/// Reads the records of a tasks or results frame (its payload, which came with `nfds`
/// descriptors) one at a time, checking each against the bytes and descriptors left:
/// mp::DecodeError for anything that does not fit. Reads only; allocates nothing.
class FrameRecords {
public:
    FrameRecords(Kind kind, std::span<const std::byte> payload, std::size_t nfds)
        : d_(payload), results_(kind == Kind::results), nfds_(nfds) {
        d_.read_bytes(&count_, sizeof count_);
    }
    /// The next record into r; false after the last (mp::DecodeError on trailing bytes).
    bool next(FrameRecord& r) {
        if (done_ == count_) {
            d_.finish();
            return false;
        }
        ++done_;
        d_.read_bytes(&r.id, sizeof r.id);
        r.ns = 0;
        if (results_) d_.read_bytes(&r.ns, sizeof r.ns);
        d_.read_bytes(&r.nfds, sizeof r.nfds);
        r.bytes = d_.take(d_.read_count(1));
        if (r.nfds > nfds_ - fd_at_) throw DecodeError("multiproc: engine: descriptors missing from a frame");
        r.first_fd = fd_at_;
        fd_at_ += r.nfds;
        return true;
    }

private:
    Decoder d_;
    bool results_;
    std::size_t nfds_;
    std::uint32_t count_ = 0, done_ = 0;
    std::size_t fd_at_ = 0;
};

/// The shared page of one worker. task: id of the task running (0: none); element: the chunk
/// item in progress.
struct WorkerSlot {
    std::atomic<std::uint64_t> task;
    std::atomic<std::uint64_t> element;
};

/// What a worker is started with besides its socket (trivially copyable: it ships as bytes).
struct WorkerBoot {
    int threads;  ///< value for OMP_NUM_THREADS & co. where the user did not set them
    int reserved;
};

/// The worker process's target: runs tasks from `conn` until told to exit.
void worker_main(Connection conn, WorkerBoot boot);

/// Testing hook: in a worker process, its socket to the supervisor (-1 elsewhere).
int worker_socket() noexcept;

}  // namespace mp::detail::wire
