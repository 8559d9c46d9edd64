// The engine's scheduler: which task goes to which worker, in what batch, and what becomes of
// its outcome. It pulls tasks from the sources (chunk sizes from measured task times), packs
// them into batches (each worker holds one running and one prefetched; idle workers first, each
// with its share of what waits), hands results back to their sources, and decides the fate of
// the tasks a dead worker held (run again elsewhere, retried, or quarantined with their
// history). It also watches time limits (which worker runs a task past its limit), finds the
// worker of a task to cancel, and drops every task of a source cancelled with force (watching
// the ones a worker holds behind another source's task until it starts them); the supervisor
// does the killing. It runs on the supervisor's thread only; it does no I/O: batches are
// appended to a worker's outbox, results come in as frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine_stats.hpp"
#include "frame.hpp"
#include "multiproc/detail/engine.hpp"
#include "worker_lifecycle.hpp"

namespace mp::detail {

class Scheduler {
public:
    /// Schedules for `nproc` workers with the retry and maxtasksperchild settings of opts.
    Scheduler(const EngineOptions& opts, int nproc)
        : opts_(opts), nproc_(nproc), stats_(nproc, opts.owner) {}

    /// A new source: its tasks are pulled from the next fill on.
    void add(std::shared_ptr<TaskSource> src);
    /// Queues a batch for every worker that can take one (idle workers first, then prefetch).
    void fill(std::vector<Worker>& workers);
    /// A results frame from w: each result goes to its source.
    void on_results(Worker& w, wire::Frame& f);
    /// The tasks a dead worker held: run again elsewhere, retried, or failed (quarantined).
    void on_death(WorkerDeath& death);
    /// A worker to kill: its index, the task id and item it is killed for, and why (a task past
    /// its time limit, or cancelled).
    struct Overrun {
        std::size_t worker = 0;
        std::uint64_t task = 0;
        std::size_t element = 0;
        RestartReason why = RestartReason::timeout;
    };
    /// True while a task with a time limit is in flight, or a dropped task waits on a worker
    /// (else check_limits has nothing to do).
    [[nodiscard]] bool watching() const noexcept { return timed_ > 0 || !dropped_.empty(); }
    /// Appends the workers running a task (an item) past its limit to `over`, and those that
    /// started a task of a source cancelled with force; returns when to look again: the nearest
    /// limit of a running task, or, for a task not started yet, its limit from now (it cannot
    /// expire sooner); soon while a dropped task waits on a worker.
    Deadline check_limits(const std::vector<Worker>& workers, std::vector<Overrun>& over);
    /// A request to kill src's task `tag`: the worker (index) holding it and the task id, for
    /// the supervisor to kill; a task not on a worker fails at once (nullopt then, as when the
    /// task is gone or src->holds(tag, token) says the tag was reused).
    std::optional<Overrun> find_to_kill(const TaskSource* src, std::uint64_t tag, const void* token,
                                        const std::vector<Worker>& workers);
    /// Every task of src goes (EngineLink::every_task: a map cancelled with force): appends to
    /// `kill` the workers running one (or holding nothing else); one held behind another
    /// source's task is watched (check_limits) until its worker starts it; src is then
    /// forgotten and abandoned with mp::CancelledError. Nothing when src is done already.
    void kill_source(const TaskSource* src, const std::vector<Worker>& workers,
                     std::vector<Overrun>& kill);
    /// Puts back the tasks a worker held that never ran (it died before its initializer ended).
    void requeue(const std::deque<std::uint64_t>& held);
    /// Forgets every task; every source (and `incoming`) is abandoned with err.
    void abandon_all(const std::exception_ptr& err,
                     std::deque<std::shared_ptr<TaskSource>> incoming) noexcept;
    /// Drops the sources that are exhausted and have nothing in flight.
    void drop_finished();
    /// True when no source and no task is left.
    [[nodiscard]] bool idle() const noexcept { return entries_.empty() && tasks_.empty(); }
    /// The statistics it keeps (the supervisor reports worker starts and restarts there).
    StatsRecorder& stats() noexcept { return stats_; }
    /// Its statistics and the queue depths, into s (engine_stats.cpp).
    void snapshot(PoolStats& s, const std::vector<Worker>& workers) const;

private:
    struct Entry {
        std::shared_ptr<TaskSource> src;
        double ns_per_elem = -1;
        std::size_t inflight = 0;
    };
    struct Task {
        std::shared_ptr<Entry> entry;
        std::uint64_t tag = 0;
        std::size_t elements = 1;
        OwnedCall call;
        int deaths = 0;
        std::string history;
        std::int64_t timeout_ns = 0;  // time limit once started (0: none)
    };
    /// Tasks chosen for one batch, with their size and estimated time.
    struct Batch;

    bool fill_one(Worker& w, std::size_t max_tasks);
    bool pull_into(Batch& b);
    void write_batch(Worker& w, const std::vector<std::uint64_t>& ids);
    void write_limits(Worker& w, const std::vector<std::uint64_t>& ids);
    [[nodiscard]] std::size_t idle_share(const std::vector<Worker>& workers) const;
    [[nodiscard]] bool can_take(const Worker& w, std::size_t depth) const;
    /// True while the next tasks come from a source whose cost per item is not known yet (no
    /// result of it has come back) and which holds more items than every worker's full queue
    /// of blind batches (single items) would take.
    [[nodiscard]] bool probing() const;
    [[nodiscard]] std::size_t hint_for(const Entry& e) const;
    void learn(Entry& e, std::size_t elements, std::uint64_t ns);
    void quarantine_or_retry(std::uint64_t id, const WorkerDeath& death);
    void fail_killed(std::uint64_t id, const WorkerDeath& death, WorkerStats* counted);
    void fail_lost(std::uint64_t id, std::size_t element, std::exception_ptr err);
    void finish_task(std::uint64_t id);
    bool watch_dropped(const std::vector<Worker>& workers, std::vector<Overrun>& over);

    const EngineOptions& opts_;
    int nproc_;
    std::deque<std::shared_ptr<Entry>> entries_;
    std::unordered_map<std::uint64_t, Task> tasks_;
    std::deque<std::uint64_t> retry_;
    std::uint64_t next_id_ = 1;
    std::size_t rr_ = 0;
    double global_ns_per_task_ = -1;
    StatsRecorder stats_;
    std::size_t timed_ = 0;  // tasks in flight with a time limit
    // Tasks of sources cancelled with force, forgotten but still on a worker that has not
    // started them (it runs another source's task first): killed if it starts one.
    std::vector<std::uint64_t> dropped_;
};

}  // namespace mp::detail
