// The non-template half of concurrent.futures: as_completed and wait, the executor's task
// source and the executor itself.
#include "multiproc/futures.hpp"

#include <algorithm>
#include <deque>
#include <mutex>
#include <string>
#include <system_error>

#include "multiproc/process.hpp"

namespace mp {
namespace detail {

/// Yields the indices of futures in completion order (as_completed's non-template core).
class CompletionOrder {
public:
    CompletionOrder(std::vector<ResultStateBase*> states, Timeout timeout);
    CompletionOrder(const CompletionOrder&) = delete;
    CompletionOrder& operator=(const CompletionOrder&) = delete;
    ~CompletionOrder();
    /// The index (into the constructor's vector) of the next completed future, nullopt after
    /// the last; mp::TimeoutError when the deadline passes first.
    std::optional<std::size_t> next();

private:
    std::vector<ResultStateBase*> states_;
    std::vector<std::size_t> order_;  // distinct states, first index of each
    std::vector<std::pair<ResultStateBase*, std::size_t>> by_state_;  // sorted, for lookup
    std::vector<std::size_t> ready_;                                  // indices ready to yield
    std::size_t ready_pos_ = 0;
    std::size_t yielded_ = 0;
    std::vector<ResultStateBase*> registered_;
    ResultWaiter waiter_;
    Deadline deadline_;
};

/// The executor's single task source: a queue of submitted calls, one future each.
class ExecutorSource final : public TaskSource,
                             public std::enable_shared_from_this<ExecutorSource> {
public:
    explicit ExecutorSource(Engine& engine) : engine_(engine.link()) {}
    /// Queues a call for st with its time limit (TaskSlot::timeout_ns); throws (UsageError
    /// after shutdown, the engine's error once broken).
    void push(std::shared_ptr<ResultStateBase> st, OwnedCall call, std::int64_t timeout_ns = -1);
    /// Cancels every future still queued.
    void cancel_pending();
    /// No more pushes: the source ends once its queue is empty.
    void close();

    bool pull(std::size_t hint, TaskSlot& slot) override;
    bool exhausted() const override;
    std::optional<std::size_t> remaining() const override;
    void complete(std::uint64_t tag, std::span<const std::byte> bytes,
                  std::span<UniqueFd> fds) override;
    void fail(std::uint64_t tag, std::exception_ptr error) override;
    void abandon(std::exception_ptr error) override;
    bool holds(std::uint64_t tag, const void* token) const override;

private:
    struct Queued {
        std::shared_ptr<ResultStateBase> st;
        OwnedCall call;
        std::int64_t timeout_ns;
    };
    std::shared_ptr<ResultStateBase> take(std::uint64_t tag);

    EngineLink engine_;
    mutable std::mutex m_;
    std::deque<Queued> queue_;
    std::vector<std::shared_ptr<ResultStateBase>> inflight_;  // indexed by tag
    std::vector<std::uint64_t> free_;                         // free slots of inflight_
    bool closed_ = false;
    std::exception_ptr abandoned_;
};

// --- as_completed ------------------------------------------------------------------------------

void CompletionOrderDeleter::operator()(CompletionOrder* order) const noexcept { delete order; }

CompletionOrderPtr make_completion_order(std::vector<ResultStateBase*> states, Timeout timeout) {
    return CompletionOrderPtr(new CompletionOrder(std::move(states), timeout));
}

std::optional<std::size_t> next_completed(CompletionOrder& order) { return order.next(); }

CompletionOrder::CompletionOrder(std::vector<ResultStateBase*> states, Timeout timeout)
    : states_(std::move(states)), deadline_(timeout) {
    by_state_.reserve(states_.size());
    for (std::size_t i = 0; i < states_.size(); ++i) by_state_.emplace_back(states_[i], i);
    // Sorted by state, then by position: the first position of each state comes first.
    std::sort(by_state_.begin(), by_state_.end());
    by_state_.erase(std::unique(by_state_.begin(), by_state_.end(),
                                [](const auto& a, const auto& b) { return a.first == b.first; }),
                    by_state_.end());
    std::vector<std::size_t> distinct;
    for (auto& [s, i] : by_state_) distinct.push_back(i);
    std::sort(distinct.begin(), distinct.end());
    // Those already done come first, in input order; the others are watched.
    for (std::size_t i : distinct) {
        if (states_[i]->add_waiter(&waiter_)) registered_.push_back(states_[i]);
        else ready_.push_back(i);
    }
    order_ = std::move(distinct);
}

CompletionOrder::~CompletionOrder() {
    for (auto* s : registered_) s->remove_waiter(&waiter_);
}

std::optional<std::size_t> CompletionOrder::next() {
    if (yielded_ == order_.size()) return std::nullopt;
    while (ready_pos_ == ready_.size()) {
        if (!waiter_.wait(deadline_)) {
            const std::size_t left = order_.size() - yielded_;
            throw TimeoutError("mp::as_completed: " + std::to_string(left) + " (of " +
                               std::to_string(order_.size()) + ") futures unfinished");
        }
        for (auto* s : waiter_.take()) {
            auto it = std::lower_bound(by_state_.begin(), by_state_.end(),
                                       std::make_pair(s, std::size_t{0}));
            ready_.push_back(it->second);
            std::erase(registered_, s);
        }
    }
    ++yielded_;
    return ready_[ready_pos_++];
}

// --- wait --------------------------------------------------------------------------------------

DoneAndNotDoneFutures wait_futures(std::span<ResultStateBase* const> states, Timeout timeout,
                                   ReturnWhen when) {
    const Deadline deadline(timeout);
    auto failed = [](ResultStateBase* s) {
        return s->status() == ResultStateBase::Status::finished && s->error() != nullptr;
    };
    auto satisfied = [&] {
        std::size_t done = 0;
        bool any_error = false;
        for (auto* s : states) {
            if (s->done()) ++done;
            if (failed(s)) any_error = true;
        }
        switch (when) {
            case ReturnWhen::first_completed: return done > 0 || states.empty();
            case ReturnWhen::first_exception: return any_error || done == states.size();
            default: return done == states.size();
        }
    };
    if (!satisfied()) {
        ResultWaiter waiter;
        std::vector<ResultStateBase*> registered;
        struct Unregister {
            std::vector<ResultStateBase*>& r;
            ResultWaiter& w;
            ~Unregister() {
                for (auto* s : r) s->remove_waiter(&w);
            }
        } unregister{registered, waiter};
        for (auto* s : states)
            if (std::find(registered.begin(), registered.end(), s) == registered.end() &&
                s->add_waiter(&waiter))
                registered.push_back(s);
        while (!satisfied()) {
            if (!waiter.wait(deadline)) break;
            static_cast<void>(waiter.take());
        }
    }
    DoneAndNotDoneFutures out;
    for (std::size_t i = 0; i < states.size(); ++i)
        (states[i]->done() ? out.done : out.not_done).push_back(i);
    return out;
}

// --- ExecutorSource ----------------------------------------------------------------------------

void push_task(ExecutorSource& src, std::shared_ptr<ResultStateBase> st, OwnedCall call,
               std::int64_t timeout_ns) {
    src.push(std::move(st), std::move(call), timeout_ns);
}

void ExecutorSource::push(std::shared_ptr<ResultStateBase> st, OwnedCall call,
                          std::int64_t timeout_ns) {
    {
        std::lock_guard lk(m_);
        if (abandoned_) std::rethrow_exception(abandoned_);
        if (closed_)
            throw UsageError(
                "mp::ProcessPoolExecutor::submit: cannot schedule new futures after shutdown");
        queue_.push_back({std::move(st), std::move(call), timeout_ns});
    }
    engine_.wake();
}

void ExecutorSource::cancel_pending() {
    std::deque<Queued> q;
    {
        std::lock_guard lk(m_);
        q.swap(queue_);
    }
    for (auto& e : q) e.st->cancel();
}

void ExecutorSource::close() {
    {
        std::lock_guard lk(m_);
        closed_ = true;
    }
    engine_.wake();
}

std::optional<std::size_t> ExecutorSource::remaining() const {
    std::lock_guard lk(m_);
    return queue_.size();
}

bool ExecutorSource::pull(std::size_t, TaskSlot& slot) {
    std::lock_guard lk(m_);
    while (!queue_.empty()) {
        Queued q = std::move(queue_.front());
        queue_.pop_front();
        const std::uint64_t tag = free_.empty() ? inflight_.size() : free_.back();
        if (!q.st->set_running({engine_, weak_from_this(), tag})) continue;  // cancelled
        if (!free_.empty()) {
            free_.pop_back();
            inflight_[tag] = std::move(q.st);
        } else {
            inflight_.push_back(std::move(q.st));
        }
        slot.tag = tag;
        slot.elements = 1;
        slot.call = std::move(q.call);
        slot.timeout_ns = q.timeout_ns;
        return true;
    }
    return false;
}

bool ExecutorSource::exhausted() const {
    std::lock_guard lk(m_);
    return (closed_ && queue_.empty()) || abandoned_;
}

std::shared_ptr<ResultStateBase> ExecutorSource::take(std::uint64_t tag) {
    std::lock_guard lk(m_);
    if (tag >= inflight_.size() || !inflight_[tag]) return nullptr;
    free_.push_back(tag);
    return std::move(inflight_[tag]);
}

void ExecutorSource::complete(std::uint64_t tag, std::span<const std::byte> bytes,
                              std::span<UniqueFd> fds) {
    if (auto st = take(tag)) st->set_result_bytes(bytes, fds);
}

void ExecutorSource::fail(std::uint64_t tag, std::exception_ptr error) {
    if (auto st = take(tag)) st->set_error(std::move(error));
}

bool ExecutorSource::holds(std::uint64_t tag, const void* token) const {
    std::lock_guard lk(m_);
    return tag < inflight_.size() && inflight_[tag].get() == token;
}

void ExecutorSource::abandon(std::exception_ptr error) {
    std::deque<Queued> q;
    std::vector<std::shared_ptr<ResultStateBase>> inflight;
    {
        std::lock_guard lk(m_);
        abandoned_ = error;
        q.swap(queue_);
        inflight.swap(inflight_);
        free_.clear();
    }
    for (auto& e : q) e.st->set_error(error);
    for (auto& st : inflight)
        if (st) st->set_error(error);
}

}  // namespace detail

// --- ProcessPoolExecutor -----------------------------------------------------------------------

ProcessPoolExecutor::ProcessPoolExecutor(std::optional<int> max_workers, ExecutorOptions options) {
    if (max_workers && *max_workers < 1)
        throw UsageError("mp::ProcessPoolExecutor: max_workers must be at least 1");
    // On the "mpi" context the default is every slot of every worker rank (0), not this host's.
    const bool cluster = options.context && options.context->method() == StartMethod::mpi;
    auto eo =
        detail::front_end_engine_options("mp::ProcessPoolExecutor",
                                         max_workers.value_or(cluster ? 0 : process_cpu_count()),
                                         options.initializer, options.max_tasks_per_child,
                                         options.context, options.retries);
    detail::set_worker_limits(eo, options.task_timeout, options.retry_timeouts,
                              options.max_memory_per_child);
    engine_ = detail::make_owned<detail::Engine>(std::move(eo));
    source_ = std::make_shared<detail::ExecutorSource>(*engine_);
    engine_->submit(source_);
}

ProcessPoolExecutor::~ProcessPoolExecutor() {
    try {
        shutdown(true);
    } catch (...) {
        // Ctrl-C under mp::SigintGuard (KeyboardInterrupt) while waiting: stop the workers now.
        engine_->terminate();
    }
}

void ProcessPoolExecutor::check_open(const char* what) const {
    if (shutdown_.load(std::memory_order_acquire))
        throw UsageError(std::string("mp::ProcessPoolExecutor::") + what +
                         ": cannot schedule new futures after shutdown");
    if (auto e = engine_->broken()) std::rethrow_exception(e);
}

void ProcessPoolExecutor::track(std::shared_ptr<detail::MapSourceBase> src) {
    std::lock_guard lk(maps_m_);
    std::erase_if(maps_, [](const auto& w) { return w.expired(); });
    maps_.push_back(std::move(src));
}

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
    shutdown_.store(true, std::memory_order_release);
    if (cancel_futures) {
        source_->cancel_pending();
        std::vector<std::shared_ptr<detail::MapSourceBase>> maps;
        {
            std::lock_guard lk(maps_m_);
            for (auto& w : maps_)
                if (auto s = w.lock()) maps.push_back(std::move(s));
        }
        for (auto& s : maps) s->cancel_remaining();
    }
    source_->close();
    engine_->close();
    if (!wait) return;
    std::lock_guard lk(join_m_);
    if (joined_.load(std::memory_order_acquire)) return;
    engine_->join();
    joined_.store(true, std::memory_order_release);
}

void ProcessPoolExecutor::terminate_workers() { stop_workers(true); }

void ProcessPoolExecutor::kill_workers() { stop_workers(false); }

void ProcessPoolExecutor::stop_workers(bool gently) {
    shutdown_.store(true, std::memory_order_release);
    source_->close();
    // The engine fails every task not done with BrokenProcessPool (the source's abandon), so
    // that the shutdown after it has nothing to wait for.
    engine_->terminate(gently);
    shutdown(true);
}

int ProcessPoolExecutor::max_workers() const noexcept { return engine_->processes(); }

std::vector<pid_t> ProcessPoolExecutor::worker_pids() const { return engine_->worker_pids(); }

PoolStats ProcessPoolExecutor::stats() const { return engine_->stats(); }

}  // namespace mp
