#include "scheduler.hpp"

#include <algorithm>
#include <limits>

#include "multiproc/errors.hpp"
#include "task_name.hpp"
#include "worker_trace.hpp"

namespace mp::detail {

namespace {

constexpr double kTargetTaskNs = 2e6;  // about 2 ms of work a task
constexpr std::size_t kMaxHint = std::size_t{1} << 20;
constexpr std::size_t kMaxBatchTasks = 1024;
constexpr std::size_t kMaxBatchBytes = std::size_t{4} << 20;
constexpr std::size_t kBatchesPerWorker = 2;  // one running, one prefetched
// A hosted worker (an MPI rank's slot) is several hops from the engine (rank 0's progress
// thread, MPI, the rank's relay), each of which must get a CPU beside busy workers: a batch sent
// when one comes back arrives after the prefetched batch (about kTargetTaskNs of work) has run,
// and the worker waits. Three prefetched batches cover it (1 ms tasks over 2 ranks, against 2
// local workers: 0.76x with one, 0.88x with two, 0.93x-0.97x with three; docs/mpi.md).
// Not while the tasks come from a large source whose cost is not known yet (probing()): those
// batches are sized blind (single items), and a hosted worker holding four of them runs them all
// before the first well-sized chunk that the first result makes possible (a map of 2,000,000
// tiny tasks over MPI: a third of its time went on them). A source that blind batches cover
// whole goes out at once: no chunk would follow them.
constexpr std::size_t kBatchesPerHostedWorker = 4;
// How often a worker holding a dropped task behind another source's task is looked at: a task
// start sends no message, so the progress slot is polled, only while such a task waits.
constexpr auto kDroppedPoll = std::chrono::milliseconds(10);

// "300 ms", "2 s", "1500 us": a time limit as the user most likely wrote it.
std::string describe_limit(std::int64_t ns) {
    if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + " s";
    if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + " ms";
    if (ns % 1'000 == 0) return std::to_string(ns / 1'000) + " us";
    return std::to_string(ns) + " ns";
}

}  // namespace

struct Scheduler::Batch {
    std::size_t quota = 0;
    std::vector<std::uint64_t> ids;
    std::size_t bytes = 0;
    double est = 0;

    [[nodiscard]] bool full() const noexcept {
        return ids.size() >= quota || bytes >= kMaxBatchBytes || est >= kTargetTaskNs;
    }
};

void Scheduler::add(std::shared_ptr<TaskSource> src) {
    entries_.push_back(std::make_shared<Entry>(Entry{std::move(src)}));
}

std::size_t Scheduler::hint_for(const Entry& e) const {
    if (e.ns_per_elem < 0) return 1;
    double h = kTargetTaskNs / std::max(e.ns_per_elem, 0.5);
    if (auto rem = e.src->remaining()) {
        // Guided scheduling: never more than a share of what is left, so the last tasks spread
        // over every worker.
        const double share = static_cast<double>(*rem) / (2.0 * nproc_);
        h = std::min(h, std::max(1.0, share));
    }
    h = std::clamp(h, 1.0, static_cast<double>(kMaxHint));
    return static_cast<std::size_t>(h);
}

bool Scheduler::can_take(const Worker& w, std::size_t depth) const {
    if (!w.connected() || w.exiting || w.doom || w.batches.size() >= depth) return false;
    return !opts_.max_tasks_per_child || w.tasks_sent < opts_.max_tasks_per_child;
}

// How many tasks an idle worker's batch may hold so that the tasks waiting now spread over every
// idle worker (the batch estimate cannot tell a long task from a short one before it has run:
// two submissions must not share one worker while another has nothing to do). Unbounded when a
// source cannot say how much it holds.
// The sum stops once it reaches a full batch for every idle worker: the answer is then fixed, and
// a long queue of single tasks (apply_async) costs no walk on every submission.
std::size_t Scheduler::idle_share(const std::vector<Worker>& workers) const {
    std::size_t idle = 0;
    for (const auto& w : workers) idle += can_take(w, 1) ? 1 : 0;
    if (idle == 0) return kMaxBatchTasks;
    const std::size_t enough = idle * kMaxBatchTasks;
    std::size_t waiting = retry_.size();
    for (const auto& e : entries_) {
        if (waiting >= enough) return kMaxBatchTasks;
        const auto rem = e->src->remaining();
        if (!rem) return kMaxBatchTasks;
        waiting += *rem;
    }
    return std::max<std::size_t>(1, (waiting + idle - 1) / idle);
}

void Scheduler::fill(std::vector<Worker>& workers) {
    // Idle workers first, each with its share of what waits; then one prefetched batch for each
    // busy worker: no task waits behind another while some worker has nothing to do.
    const std::size_t batches =
        !opts_.host ? kBatchesPerWorker : (probing() ? 1 : kBatchesPerHostedWorker);
    for (std::size_t depth = 1; depth <= batches; ++depth) {
        const std::size_t max_tasks = depth == 1 ? idle_share(workers) : kMaxBatchTasks;
        bool progress = true;
        while (progress) {
            progress = false;
            for (std::size_t k = 0; k < workers.size(); ++k) {
                auto& w = workers[(rr_ + k) % workers.size()];
                if (!can_take(w, depth)) continue;
                if (fill_one(w, max_tasks)) progress = true;
                else return;  // nothing to send to anyone
            }
            ++rr_;
        }
    }
}

bool Scheduler::probing() const {
    const std::size_t blind =
        kBatchesPerHostedWorker * kMaxBatchTasks * static_cast<std::size_t>(nproc_);
    for (const auto& e : entries_) {
        if (e->src->exhausted()) continue;
        const auto rem = e->src->remaining();
        return e->ns_per_elem < 0 && (!rem || *rem > blind);
    }
    return false;
}

bool Scheduler::fill_one(Worker& w, std::size_t max_tasks) {
    Batch b;
    b.quota = std::min(kMaxBatchTasks, max_tasks);
    if (opts_.max_tasks_per_child)
        b.quota = std::min(b.quota, opts_.max_tasks_per_child - w.tasks_sent);
    auto add = [&](std::uint64_t id) {
        Task& t = tasks_.at(id);
        b.ids.push_back(id);
        b.bytes += t.call.bytes.size();
        const double per = t.entry->ns_per_elem >= 0
                               ? t.entry->ns_per_elem * static_cast<double>(t.elements)
                               : global_ns_per_task_;
        b.est += per < 0 ? kTargetTaskNs : per;
    };
    while (!b.full() && !retry_.empty()) {
        add(retry_.front());
        retry_.pop_front();
    }
    for (std::size_t e = 0; e < entries_.size() && !b.full();) {
        auto& entry = entries_[e];
        if (entry->src->exhausted()) {
            ++e;
            continue;
        }
        TaskSlot slot;
        bool got = false;
        try {
            got = entry->src->pull(hint_for(*entry), slot);
        } catch (...) {
            // A source must not throw; if it does, its consumer learns of it through abandon.
            entry->src->abandon(std::current_exception());
            entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(e));
            continue;
        }
        if (!got) {
            ++e;
            continue;
        }
        const std::uint64_t id = next_id_++;
        ++entry->inflight;
        const std::int64_t limit = slot.timeout_ns < 0 ? opts_.task_timeout_ns : slot.timeout_ns;
        if (limit) ++timed_;
        tasks_.emplace(id, Task{entry,
                                slot.tag,
                                std::max<std::size_t>(slot.elements, 1),
                                std::move(slot.call),
                                0,
                                {},
                                limit});
        if (trace::on()) trace_task_pulled(&opts_, id);
        add(id);
    }
    if (b.ids.empty()) return false;
    write_batch(w, b.ids);
    return true;
}

// A hosted worker's time limits go ahead of its batch: its rank enforces them.
void Scheduler::write_limits(Worker& w, const std::vector<std::uint64_t>& ids) {
    std::vector<std::byte> payload;
    for (auto id : ids) {
        const std::int64_t ns = tasks_.at(id).timeout_ns;
        if (!ns) continue;
        const auto* a = reinterpret_cast<const std::byte*>(&id);
        const auto* b = reinterpret_cast<const std::byte*>(&ns);
        payload.insert(payload.end(), a, a + sizeof id);
        payload.insert(payload.end(), b, b + sizeof ns);
    }
    if (!payload.empty()) wire::put_frame(w.link->out().bytes, wire::Kind::limits, payload);
}

void Scheduler::write_batch(Worker& w, const std::vector<std::uint64_t>& ids) {
    if (w.host) write_limits(w, ids);
    auto& out = w.link->out();
    const std::size_t bytes_before = out.bytes.size();
    wire::RecordWriter frame(out.bytes, wire::Kind::tasks);
    std::uint32_t nfds = 0;
    std::size_t items = 0;
    for (auto id : ids) {
        const Task& t = tasks_.at(id);
        items += t.elements;
        frame.begin(id);
        out.bytes.insert(out.bytes.end(), t.call.bytes.begin(), t.call.bytes.end());
        frame.end(static_cast<std::uint32_t>(t.call.fds.size()));
        for (const auto& fd : t.call.fds) out.fds.push_back(fd.get());
        nfds += static_cast<std::uint32_t>(t.call.fds.size());
        w.held.push_back(id);
        // Written before the batch is sent, so the worker times every item of it.
        if (t.timeout_ns && w.slot) w.slot->stamp_items.store(1, std::memory_order_relaxed);
    }
    frame.finish(nfds);
    w.batches.push_back(ids.size());
    w.tasks_sent += ids.size();
    stats_.batch_sent(ids.size(), items);
    if (trace::on()) trace_batch_sent(w, ids.size(), out.bytes.size() - bytes_before);
}

void Scheduler::learn(Entry& e, std::size_t elements, std::uint64_t ns) {
    const double per = static_cast<double>(ns) / static_cast<double>(elements);
    e.ns_per_elem = e.ns_per_elem < 0 ? per : 0.7 * e.ns_per_elem + 0.3 * per;
    const double pt = static_cast<double>(ns);
    global_ns_per_task_ = global_ns_per_task_ < 0 ? pt : 0.9 * global_ns_per_task_ + 0.1 * pt;
}

void Scheduler::on_results(Worker& w, wire::Frame& f) {
    if (trace::on()) trace_results(w);
    auto& fds = f.fds;  // each record's descriptors go to its source
    wire::FrameRecords records(wire::Kind::results, f.payload, fds.size());
    WorkerStats* counted = stats_.at(w.index);
    for (wire::FrameRecord rec; records.next(rec);) {
        // The worker answers in the order it was sent; anything else is a protocol error.
        if (w.held.empty() || w.held.front() != rec.id)
            throw DecodeError(opts_.owner + ": results out of order");
        w.held.pop_front();
        if (!w.batches.empty() && --w.batches.front() == 0) w.batches.pop_front();

        auto it = tasks_.find(rec.id);
        if (it == tasks_.end()) continue;
        Task& t = it->second;
        learn(*t.entry, t.elements, rec.ns);
        StatsRecorder::task_done(counted, t.elements, rec.ns, rec.bytes);
        std::span<UniqueFd> task_fds(fds.data() + rec.first_fd, rec.nfds);
        try {
            t.entry->src->complete(t.tag, rec.bytes, task_fds);
        } catch (...) {
            t.entry->src->fail(t.tag, std::current_exception());
        }
        finish_task(rec.id);
    }
}

void Scheduler::finish_task(std::uint64_t id) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    --it->second.entry->inflight;
    if (it->second.timeout_ns) --timed_;
    tasks_.erase(it);
}

void Scheduler::requeue(const std::deque<std::uint64_t>& held) {
    for (auto id : held)
        if (tasks_.count(id)) retry_.push_back(id);  // not a task of a source cancelled since
}

void Scheduler::on_death(WorkerDeath& death) {
    WorkerStats* counted = stats_.at(death.index);
    for (auto id : death.held) {
        if (!tasks_.count(id)) continue;
        if (death.doomed_task) {
            // Killed for one task: the others (even one it had moved on to) were not at fault.
            if (id == death.doomed_task) {
                fail_killed(id, death, counted);
            } else {
                retry_.push_back(id);
                if (counted) ++counted->tasks_resent;
            }
            continue;
        }
        if (id != death.culprit) {
            retry_.push_back(id);  // never started, or its result was lost: run it elsewhere
            if (counted) ++counted->tasks_resent;
            continue;
        }
        quarantine_or_retry(id, death);
    }
}

// The task that was running when its worker died: again (first in line) while its retry budget
// lasts, else failed with the history of the workers it killed.
void Scheduler::quarantine_or_retry(std::uint64_t id, const WorkerDeath& death) {
    Task& t = tasks_.at(id);
    ++t.deaths;
    if (!t.history.empty()) t.history += "; ";
    t.history += "attempt " + std::to_string(t.deaths) + ": " + death.how;
    WorkerStats* counted = stats_.at(death.index);
    if (trace::on()) trace_task_lost(&opts_, id, death.pid, t.deaths <= opts_.retries);
    if (t.deaths <= opts_.retries) {
        retry_.push_front(id);
        if (counted) ++counted->tasks_retried;
        return;
    }
    if (counted) ++counted->tasks_failed;
    std::string msg = opts_.owner + ": the " + death.how + " while running this task";
    if (opts_.retries > 0)
        msg = opts_.owner + ": task quarantined after it killed " + std::to_string(t.deaths) +
              " worker processes (" + t.history + ")";
    fail_lost(id, death.element, std::make_exception_ptr(BrokenProcessPool(msg)));
}

void Scheduler::fail_lost(std::uint64_t id, std::size_t element, std::exception_ptr err) {
    Task& t = tasks_.at(id);
    auto entry = t.entry;
    const auto tag = t.tag;
    finish_task(id);
    try {
        entry->src->lost(tag, element, std::move(err));
    } catch (...) {
    }
}

// The task its worker was killed for: cancelled, or past its time limit (then retried only
// when timeouts count against the retry budget).
void Scheduler::fail_killed(std::uint64_t id, const WorkerDeath& death, WorkerStats* counted) {
    Task& t = tasks_.at(id);
    const std::string worker = "worker process " + std::to_string(death.pid);
    if (counted) ++counted->tasks_failed;  // unless retried (below)
    if (death.reason == RestartReason::cancelled) {
        fail_lost(id, death.doomed_element,
                  std::make_exception_ptr(CancelledError(
                      opts_.owner + ": the task was cancelled; its " + worker + " was killed")));
        return;
    }
    std::string msg = opts_.owner + ": " + describe_task_target(t.call.bytes) +
                      " timed out after " + describe_limit(t.timeout_ns) + " (its " + worker +
                      " was stopped)";
    if (opts_.retry_timeouts) {
        ++t.deaths;
        if (t.deaths <= opts_.retries) {
            retry_.push_front(id);
            if (counted) --counted->tasks_failed;
            if (counted) ++counted->tasks_retried;
            return;
        }
        if (t.deaths > 1) msg += ", on each of its " + std::to_string(t.deaths) + " attempts";
    }
    fail_lost(id, death.doomed_element, std::make_exception_ptr(TimeoutError(msg)));
}

Deadline Scheduler::check_limits(const std::vector<Worker>& workers, std::vector<Overrun>& over) {
    const std::int64_t now = monotonic_ns();
    std::int64_t next = std::numeric_limits<std::int64_t>::max();
    if (!dropped_.empty() && watch_dropped(workers, over))
        next = now + std::chrono::nanoseconds(kDroppedPoll).count();
    for (std::size_t i = 0; i < workers.size(); ++i) {
        const Worker& w = workers[i];
        if (!w.proc || w.doom || !w.slot || w.held.empty()) continue;
        // Start time after the ids it belongs to (see run_batch): never an earlier task's.
        const std::uint64_t running = w.slot->task.load(std::memory_order_acquire);
        const auto element = w.slot->element.load(std::memory_order_acquire);
        const std::int64_t started = w.slot->started_ns.load(std::memory_order_relaxed);
        std::int64_t waiting = 0;  // the shortest limit of a task that may not have started
        for (auto id : w.held) {
            const auto it = tasks_.find(id);
            if (it == tasks_.end() || !it->second.timeout_ns) continue;
            const std::int64_t limit = it->second.timeout_ns;
            if (id != running) {
                waiting = waiting ? std::min(waiting, limit) : limit;
                continue;
            }
            if (now - started >= limit) {
                over.push_back({i, id, static_cast<std::size_t>(element)});
                waiting = 0;
                break;
            }
            next = std::min(next, started + limit);
        }
        if (waiting) next = std::min(next, now + waiting);
    }
    if (next == std::numeric_limits<std::int64_t>::max()) return Deadline::never();
    return Deadline(Deadline::clock::time_point(std::chrono::nanoseconds(next)));
}

std::optional<Scheduler::Overrun> Scheduler::find_to_kill(const TaskSource* src, std::uint64_t tag,
                                                          const void* token,
                                                          const std::vector<Worker>& workers) {
    std::uint64_t id = 0;
    for (const auto& [tid, t] : tasks_)
        if (t.entry->src.get() == src && t.tag == tag) id = tid;
    if (!id || !src->holds(tag, token)) return std::nullopt;
    for (std::size_t i = 0; i < workers.size(); ++i)
        if (std::find(workers[i].held.begin(), workers[i].held.end(), id) != workers[i].held.end())
            return Overrun{i, id, 0, RestartReason::cancelled};
    // Not on a worker (waiting to run again after a death): it fails here.
    std::erase(retry_, id);
    fail_lost(id, 0,
              std::make_exception_ptr(CancelledError(opts_.owner + ": the task was cancelled")));
    return std::nullopt;
}

// A dropped task its worker has started: that worker is killed. True while some dropped task
// still waits on a worker (the others are forgotten: answered, or their worker died).
bool Scheduler::watch_dropped(const std::vector<Worker>& workers, std::vector<Overrun>& over) {
    std::erase_if(dropped_, [&](std::uint64_t id) {
        for (std::size_t i = 0; i < workers.size(); ++i) {
            const Worker& w = workers[i];
            if (std::find(w.held.begin(), w.held.end(), id) == w.held.end()) continue;
            if (!w.proc || w.doom || !w.slot) return true;  // being killed, or cannot be
            if (w.slot->task.load(std::memory_order_acquire) != id) return false;
            over.push_back({i, id, 0, RestartReason::cancelled});
            return true;
        }
        return true;
    });
    return !dropped_.empty();
}

void Scheduler::kill_source(const TaskSource* src, const std::vector<Worker>& workers,
                            std::vector<Overrun>& kill) {
    const auto at = std::find_if(entries_.begin(), entries_.end(),
                                 [&](const auto& e) { return e->src.get() == src; });
    if (at == entries_.end()) return;  // every task of it has completed
    const std::shared_ptr<Entry> entry = *at;
    entries_.erase(at);
    auto mine = [&](std::uint64_t id) {
        const auto it = tasks_.find(id);
        return it != tasks_.end() && it->second.entry == entry;
    };
    for (std::size_t i = 0; i < workers.size(); ++i) {
        const Worker& w = workers[i];
        const std::uint64_t running = w.slot ? w.slot->task.load(std::memory_order_acquire) : 0;
        std::uint64_t first = 0;  // its first task of src
        bool others = false;
        for (auto id : w.held) {
            if (!mine(id)) others = others || tasks_.count(id) > 0;
            else if (!first || id == running) first = id;
        }
        if (!first) continue;
        // Running one, or holding nothing else: nothing of another source is lost with it (a
        // task it finished but has not answered yet runs again elsewhere).
        if (first == running || !others) {
            kill.push_back({i, first, 0, RestartReason::cancelled});
            continue;
        }
        for (auto id : w.held)
            if (mine(id)) dropped_.push_back(id);
    }
    std::erase_if(retry_, mine);
    for (auto it = tasks_.begin(); it != tasks_.end();) {
        if (it->second.entry != entry) {
            ++it;
            continue;
        }
        if (it->second.timeout_ns) --timed_;
        it = tasks_.erase(it);
    }
    entry->inflight = 0;
    try {
        entry->src->abandon(std::make_exception_ptr(
            CancelledError(opts_.owner + ": the map was cancelled (mp::force)")));
    } catch (...) {
    }
}

void Scheduler::abandon_all(const std::exception_ptr& err,
                            std::deque<std::shared_ptr<TaskSource>> incoming) noexcept {
    // Every task of a source fails through its abandon: the scheduler forgets them all.
    tasks_.clear();
    retry_.clear();
    dropped_.clear();
    timed_ = 0;
    auto entries = std::move(entries_);
    entries_.clear();
    for (auto& e : entries) {
        try {
            e->src->abandon(err);
        } catch (...) {
        }
    }
    for (auto& s : incoming) {
        try {
            s->abandon(err);
        } catch (...) {
        }
    }
}

void Scheduler::drop_finished() {
    std::erase_if(entries_, [](const std::shared_ptr<Entry>& e) {
        return e->inflight == 0 && e->src->exhausted();
    });
}

}  // namespace mp::detail
