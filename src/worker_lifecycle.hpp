// The engine's workers as its supervisor keeps them: started (with their init frame queued),
// watched (a sentinel to poll, a progress page naming the task and item running and since when),
// retired after maxtasksperchild or over their memory bound, killed when their task overran or
// was cancelled (SIGTERM, then SIGKILL after a grace), reaped when they die (what they held, how
// and why they died), stopped.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine_protocol.hpp"
#include "multiproc/detail/engine.hpp"
#include "multiproc/process.hpp"
#include "sys/mapping.hpp"
#include "transport.hpp"
#include "worker_host.hpp"

namespace mp::detail {

/// One worker process as the supervisor sees it (or a worker of a WorkerHost: no proc, a host).
/// Empty (no proc, no host) between a death and its replacement, and after the engine stopped.
struct Worker {
    std::optional<Process> proc;
    std::shared_ptr<WorkerHost> host;  // a hosted worker's host, and its index there
    std::size_t host_index = 0;
    std::size_t index = 0;  // its place among the engine's workers (its statistics)
    pid_t pid = 0;
    int sentinel = -1;
    std::unique_ptr<wire::Transport> link;
    UniqueFd slot_fd;
    sys::Mapping slot_map;
    wire::WorkerSlot* slot = nullptr;
    bool ready = false;                                      // its initializer succeeded
    bool exiting = false;                                    // it was sent the exit frame
    RestartReason retire_reason = RestartReason::max_tasks;  // why it was sent the exit frame
    std::optional<RestartReason> doom;  // why the supervisor is killing it (timeout, cancelled)
    std::uint64_t doomed_task = 0;      // the task it is killed for
    std::size_t doomed_element = 0;     // the item of that task it was running
    std::optional<Deadline> kill_at;    // SIGKILL then, if SIGTERM has not ended it
    std::size_t tasks_sent = 0;
    std::deque<std::uint64_t> held;   // task ids, in the order sent
    std::deque<std::size_t> batches;  // tasks still owed, per batch sent

    /// True while the worker runs (its process, or its session with its host).
    [[nodiscard]] bool running() const noexcept { return proc || host; }
    /// True while the worker runs and its link is open.
    [[nodiscard]] bool connected() const noexcept { return running() && !link->closed(); }
};

/// opts with its worker host opened when its context asks for one ("mpi"); the engine's
/// options from then on.
EngineOptions with_host(EngineOptions opts);

/// How many workers an engine with these options (from with_host) runs.
int worker_count(const EngineOptions& opts);

/// Starts worker `index` (a process named PoolWorker-<number>, or the host's worker `index`) and
/// queues its init frame.
void start_worker(Worker& w, const EngineOptions& opts, int threads, std::size_t number,
                  std::size_t index);

/// Queues the exit frame (once): the worker finishes what it holds and exits 0.
void retire_worker(Worker& w, RestartReason why = RestartReason::max_tasks);

/// Starts killing w for `task` (item `element`): SIGTERM now, SIGKILL once the grace passes
/// (escalate). False (nothing done) when it is already being killed or gone.
bool doom_worker(Worker& w, RestartReason why, std::uint64_t task, std::size_t element);

/// SIGKILLs a doomed worker whose grace has passed; returns when to look again (never when
/// nothing is left to do).
Deadline escalate(Worker& w);

/// What the supervisor learns from a dead worker.
struct WorkerDeath {
    pid_t pid = 0;
    std::size_t index = 0;  // the worker's place among the engine's workers
    bool planned = false;   // it exited 0 after the exit frame
    RestartReason reason = RestartReason::crash;
    std::uint64_t doomed_task = 0;   // the task it was killed for (timeout, cancelled)
    std::size_t doomed_element = 0;  // the item of that task it was running then
    bool was_ready = false;          // its initializer had succeeded
    std::uint64_t culprit = 0;       // the task it was running (0: none)
    std::size_t element = 0;         // the item of that task it was running
    std::deque<std::uint64_t> held;
    std::string how;           // "worker process <pid> was killed by signal 9 (SIGKILL)"
    bool host_killed = false;  // its host killed it over doomed_task's time limit, not the engine
};

/// Appends to `pfds` what a supervisor's poll waits on for every running worker (its link while
/// open, its sentinel), and to `polled`, per entry, (the worker's index, true for a sentinel).
void add_poll_entries(const std::vector<Worker>& workers, std::vector<pollfd>& pfds,
                      std::vector<std::pair<std::size_t, bool>>& polled);

/// Joins a worker whose sentinel fired, reads its progress page and empties w.
WorkerDeath reap_worker(Worker& w);

/// SIGKILLs every worker, then joins them (never blocks for long). When `gently`, SIGTERM
/// first, and SIGKILL for those still running after a short grace.
void kill_workers(std::vector<Worker>& workers, bool gently = false) noexcept;

/// Sends every worker the exit frame and joins them; one that does not exit within a grace
/// period is killed.
void stop_workers(std::vector<Worker>& workers);

/// "the initializer failed in worker process <pid>: <what>", for the engine's error.
std::string describe_init_failure(pid_t pid, const std::exception_ptr& error);

}  // namespace mp::detail
