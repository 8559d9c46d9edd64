// The engine's statistics and lifecycle log: the scheduler and the supervisor report each event
// here (one call a place), under the engine's loop lock, so that a snapshot taken under the
// same lock is consistent (multiproc/engine_stats.hpp says what each number means).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "multiproc/engine_stats.hpp"

namespace mp::detail {

class StatsRecorder {
public:
    /// Counts for `nproc` worker slots; `owner` ("mp::Pool") names the pool in log messages.
    StatsRecorder(int nproc, const std::string& owner);

    /// The engine started its workers (pids by slot): logged at info.
    void pool_started(std::span<const pid_t> pids, const char* start_method);
    /// The worker of `slot` died (`how`: "worker process 12 was killed by signal 9 (SIGKILL)")
    /// and `new_pid` replaces it.
    void worker_replaced(std::size_t slot, RestartReason reason, const std::string& how,
                         pid_t new_pid);

    /// The counts of the engine's worker `index` (nullptr: no such worker). By place, not by
    /// pid: the slots of one MPI rank share the rank's pid.
    WorkerStats* at(std::size_t index) noexcept {
        return index < workers_.size() ? &workers_[index] : nullptr;
    }
    /// A task's result came back from `w` (null: not counted); its status byte says whether it
    /// failed as a whole.
    static void task_done(WorkerStats* w, std::size_t items, std::uint64_t ns,
                          std::span<const std::byte> result) noexcept;
    /// A batch of `tasks` tasks covering `items` work items was sent.
    void batch_sent(std::size_t tasks, std::size_t items) noexcept {
        batch_tasks_ = tasks;
        batch_items_ = items;
    }

    /// The counters, into s (the caller adds the queue depths).
    void snapshot(PoolStats& s) const;

private:
    std::string owner_;
    std::vector<WorkerStats> workers_;
    std::array<std::size_t, restart_reason_count> restarts_{};
    std::size_t batch_tasks_ = 0;
    std::size_t batch_items_ = 0;
};

/// The engine's close (info) and terminate (info) in the log.
void log_pool_event(const std::string& owner, const char* what) noexcept;

}  // namespace mp::detail
