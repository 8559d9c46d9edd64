// mp::PoolStats: what the task engine under mp::Pool, mp::ProcessPoolExecutor and mp::Parallel
// has done so far, from Pool::stats() and ProcessPoolExecutor::stats().
//
//   mp::PoolStats s = pool.stats();
//   for (const mp::WorkerStats& w : s.workers)
//       std::printf("worker %zu (pid %d): %zu tasks, %.3f s busy\n", w.index, w.pid,
//                   w.tasks_done, std::chrono::duration<double>(w.busy).count());
//   std::size_t crashes = s.restarts_for(mp::RestartReason::crash);
//
// Words: a *task* is what the engine sends to a worker at once and gets one result for: one
// apply_async or submit call, or one chunk of a map (many *work items*). A *batch* is the
// tasks travelling to a worker in one frame.
//
// Consistency: a snapshot is taken under the engine's lock, between two events of its loop, so
// its numbers agree with one another (a task is counted as done or in flight, never both nor
// neither). Counters only grow, over the whole life of the pool. Taking a snapshot waits for
// the engine's current event (a result callback of the user runs inside one).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <vector>

#include "multiproc/detail/std_parts.hpp"

namespace mp {

/// Why a worker process was replaced.
enum class RestartReason : unsigned char {
    crash,       ///< it died on its own (a signal, an exit in user code, ...)
    max_tasks,   ///< it ran its maxtasksperchild (max_tasks_per_child) tasks and was retired
    max_memory,  ///< its resident set exceeded max_memory_per_child and it was retired
    timeout,     ///< it was killed: its task overran its time limit (task_timeout)
    cancelled,   ///< it was killed: its task was cancelled with mp::force
};
/// The number of RestartReason values (the size of PoolStats::restarts).
inline constexpr std::size_t restart_reason_count = 5;

/// "crash", "max_tasks", "max_memory", "timeout", "cancelled".
[[nodiscard]] const char* to_string(RestartReason reason) noexcept;

/// One worker slot of the pool: the processes that held it in turn (a replacement takes the
/// slot of the worker it replaces), counted together.
struct WorkerStats {
    std::size_t index = 0;            ///< the slot, 0 .. processes() - 1
    pid_t pid = 0;                    ///< its process now; 0 while it has none (pool stopped)
    std::size_t tasks_done = 0;       ///< tasks whose result came back (a value or an exception)
    std::size_t items_done = 0;       ///< work items of those tasks
    std::size_t tasks_failed = 0;     ///< tasks that ended in an exception as a whole, or died with
                                      ///< their worker and were not run again
    std::size_t tasks_retried = 0;    ///< tasks whose worker died running them and that were
                                      ///< sent to run again (PoolOptions::retries)
    std::size_t tasks_resent = 0;     ///< tasks its dead worker held without running them (or
                                      ///< whose result was lost with it), sent again elsewhere
    std::chrono::nanoseconds busy{};  ///< time spent running tasks, as the workers measured it
    std::size_t restarts = 0;         ///< processes of this slot replaced, whatever the reason
};

/// A consistent snapshot of a pool's engine; see the header comment.
struct PoolStats {
    std::vector<WorkerStats> workers;  ///< one per worker slot, by index
    std::size_t tasks_done = 0;        ///< sum of workers[].tasks_done
    std::size_t items_done = 0;        ///< sum of workers[].items_done
    std::size_t tasks_failed = 0;      ///< sum of workers[].tasks_failed
    std::size_t tasks_retried = 0;     ///< sum of workers[].tasks_retried
    std::chrono::nanoseconds busy{};   ///< sum of workers[].busy
    /// Work items submitted and not sent to a worker yet (queue depth, sending side). A lazy
    /// imap input counts only the items it has read; tasks waiting to be sent again count
    /// their items.
    std::size_t queued_items = 0;
    /// Tasks sent to a worker whose result has not come back (queue depth, worker side).
    std::size_t in_flight_tasks = 0;
    std::size_t batch_tasks = 0;  ///< tasks in the last batch sent (the batch size in use)
    std::size_t batch_items = 0;  ///< work items in the last batch sent
    /// Worker processes replaced, by reason: restarts[static_cast<std::size_t>(reason)].
    std::array<std::size_t, restart_reason_count> restarts{};

    /// restarts[reason].
    [[nodiscard]] std::size_t restarts_for(RestartReason reason) const noexcept {
        return restarts[static_cast<std::size_t>(reason)];
    }
    /// Every replacement, whatever the reason.
    [[nodiscard]] std::size_t total_restarts() const noexcept {
        std::size_t n = 0;
        for (auto r : restarts) n += r;
        return n;
    }
};

}  // namespace mp
