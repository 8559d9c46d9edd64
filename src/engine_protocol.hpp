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
#include <cstdint>

#include "multiproc/connection.hpp"

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
