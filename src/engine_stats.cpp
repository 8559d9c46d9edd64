// The engine's statistics (engine_stats.hpp) and the log lines of its lifecycle.
#include "engine_stats.hpp"

#include "multiproc/detail/task_protocol.hpp"
#include "multiproc/logging.hpp"
#include "scheduler.hpp"

namespace mp {

const char* to_string(RestartReason reason) noexcept {
    switch (reason) {
        case RestartReason::crash: return "crash";
        case RestartReason::max_tasks: return "max_tasks";
        case RestartReason::max_memory: return "max_memory";
        case RestartReason::timeout: return "timeout";
        case RestartReason::cancelled: return "cancelled";
    }
    return "unknown";
}

namespace detail {

StatsRecorder::StatsRecorder(int nproc, const std::string& owner)
    : owner_(owner), workers_(static_cast<std::size_t>(nproc)) {
    for (std::size_t i = 0; i < workers_.size(); ++i) workers_[i].index = i;
}

void StatsRecorder::pool_started(std::span<const pid_t> pids, const char* start_method) {
    for (std::size_t i = 0; i < pids.size() && i < workers_.size(); ++i) workers_[i].pid = pids[i];
    log_lazily(LogLevel::info, [&] {
        std::string m = owner_ + ": started " + std::to_string(pids.size()) +
                        " worker processes (start method " + start_method + "):";
        for (pid_t p : pids) m += " " + std::to_string(p);
        return m;
    });
}

void StatsRecorder::worker_replaced(std::size_t slot, RestartReason reason, const std::string& how,
                                    pid_t new_pid) {
    WorkerStats& w = workers_.at(slot);
    ++w.restarts;
    ++restarts_[static_cast<std::size_t>(reason)];
    w.pid = new_pid;
    log_lazily(reason == RestartReason::crash ? LogLevel::info : LogLevel::debug, [&] {
        return owner_ + ": " + how + " (" + to_string(reason) + "); replaced by worker process " +
               std::to_string(new_pid);
    });
}

void StatsRecorder::task_done(WorkerStats* w, std::size_t items, std::uint64_t ns,
                              std::span<const std::byte> result) noexcept {
    if (!w) return;
    ++w->tasks_done;
    w->items_done += items;
    w->busy += std::chrono::nanoseconds(ns);
    const auto error = static_cast<std::uint8_t>(TaskStatus::error);
    if (!result.empty() && result[0] == std::byte{error}) ++w->tasks_failed;
}

void StatsRecorder::snapshot(PoolStats& s) const {
    s.workers = workers_;
    for (const auto& w : workers_) {
        s.tasks_done += w.tasks_done;
        s.items_done += w.items_done;
        s.tasks_failed += w.tasks_failed;
        s.tasks_retried += w.tasks_retried;
        s.busy += w.busy;
    }
    s.restarts = restarts_;
    s.batch_tasks = batch_tasks_;
    s.batch_items = batch_items_;
}

void log_pool_event(const std::string& owner, const char* what) noexcept {
    log_lazily(LogLevel::info, [&] { return owner + ": " + what; });
}

// The queue depths: items the sources still hold or that wait to be sent again, and tasks
// that workers hold.
void Scheduler::snapshot(PoolStats& s, const std::vector<Worker>& workers) const {
    stats_.snapshot(s);
    for (auto id : retry_)
        if (auto it = tasks_.find(id); it != tasks_.end()) s.queued_items += it->second.elements;
    for (const auto& e : entries_)
        if (auto rem = e->src->remaining()) s.queued_items += *rem;
    for (const auto& w : workers) s.in_flight_tasks += w.held.size();
}

}  // namespace detail
}  // namespace mp
