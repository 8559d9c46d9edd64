// The engine's private protocol between the supervisor (src/engine.cpp) and a worker
// (src/worker.cpp), over one transport link per worker (transport.hpp: an AF_UNIX stream
// socket, or any other transport). Frames and their records are laid out as frame.hpp says;
// their meaning:
//
//   init        parent -> worker  u64 n | n bytes of the initializer call (n = 0: none) |
//                                 u64 max_memory_per_child (for an MPI rank's relay, which
//                                 starts the worker: a local worker has it from its boot);
//                                 fds: [progress slot memfd, initializer's fds...]
//   tasks       parent -> worker  records: the calls to run, in order
//   exit        parent -> worker  (empty) finish and exit 0
//   ready       worker -> parent  (empty) the initializer succeeded
//   init_failed worker -> parent  the initializer's exception (codec)
//   results     worker -> parent  records: the tasks' results (run_shipped_task's bytes) and
//                                 times, in the order the tasks were sent
//   retire      relay -> parent   (empty) after results: the worker is over its memory bound
//                                 (a local worker says so in its progress slot instead)
//   limits      parent -> relay   before a tasks frame: (u64 id | i64 ns) of each of its tasks
//                                 with a time limit, which an MPI rank's relay enforces (rank 0
//                                 does not share the worker's progress slot); never sent to a
//                                 local worker
//
// The progress slot is a page of shared memory where the worker publishes the task and chunk
// item it is running, so the supervisor knows exactly what a crash interrupted.
#pragma once

#include <atomic>
#include <cstdint>

#include "frame.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/detail/task.hpp"
#include "transport.hpp"

namespace mp::detail::wire {

/// The shared page of one worker (detail/task.hpp).
using WorkerSlot = WorkerProgress;

/// What a worker is started with besides its socket (trivially copyable: it ships as bytes).
struct WorkerBoot {
    int threads;  ///< value for OMP_NUM_THREADS & co. where the user did not set them
    int reserved;
    std::uint64_t max_rss =
        0;  ///< retire once the resident set exceeds it after a batch (0: never)
};

/// The worker process's target: runs tasks from `conn` until told to exit.
void worker_main(Connection conn, WorkerBoot boot);

/// A worker's session on `link`: the init frame, then batches until the exit frame or the end of
/// the stream (a local worker's whole life; one session of an MPI rank). False when the stream
/// ended before the init frame. `max_rss`: the worker asks to retire once its resident set
/// exceeds it after a batch (0: never).
bool serve_engine(Transport& link, std::uint64_t max_rss = 0);

/// Sets OMP_NUM_THREADS & co. to `threads` where the user did not set them (nothing when <= 0).
void set_thread_limits(int threads);

/// Testing hook: in a worker process, its socket to the supervisor (-1 elsewhere).
int worker_socket() noexcept;

}  // namespace mp::detail::wire
