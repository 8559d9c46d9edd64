// mp::ProcessPoolExecutor, mp::Future, mp::as_completed and mp::wait: Python's
// concurrent.futures over worker processes, on the task engine (DESIGN.md 5).
//
//   mp::ProcessPoolExecutor ex(2);
//   mp::Future<int> f = ex.submit(square, 7);
//   int r = f.result();                                // 49, or the task's exception rethrown
//   std::vector<mp::Future<int>> fs;
//   for (int i = 0; i < 10; ++i) fs.push_back(ex.submit(square, i));
//   for (mp::Future<int>& done : mp::as_completed(fs)) use(done.result());
//   for (int y : ex.map(square, std::vector<int>{1, 2, 3})) ...   // lazily, in input order
//
// Across processes: tasks travel by function identity and the codec (DESIGN.md 1, 2) under
// every start method; a target or argument that cannot travel is a compile-time error saying
// why. A std::vector of a trivially copyable type of 1 MiB or more reaches the worker through
// shared memory. Exceptions come back as the same standard type, else as mp::RemoteError with
// the remote stack trace (DESIGN.md 6), to result(), exception(), map iteration and callbacks.
//
// Crashes: unlike Python, one crashed worker does not break the executor. The task it was
// running fails with mp::BrokenProcessPool naming the worker's pid and its signal or exit
// code; the worker is replaced and every other task completes. An initializer that fails
// breaks the executor: every pending future fails with a BrokenProcessPool carrying the
// initializer's error, and submit() then throws it (Python's BrokenProcessPool), never a hang.
//
// States (as Python): pending (queued in the parent; cancel() works), running (handed to a
// worker: running now or next in that worker's batch; cancel() returns false), and done:
// finished (a value or an exception) or cancelled.
//
// Thread safety: every member of the executor and of Future may be called from several
// threads at once (submissions from many threads are safe), except that the executor's
// destructor must not race with other calls to it. Done callbacks run in the thread that
// completes the future: the executor's supervisor thread, or the thread calling cancel() or
// shutdown(cancel_futures = true), or at once in add_done_callback when the future is already
// done. Keep them short and do not wait in them for other futures of the same executor.
//
// Blocking: result(), exception(), as_completed iteration, wait(), map iteration, shutdown(true)
// and the destructor block. Signal handlers never make them fail (PEP 475, docs/signals.md);
// Ctrl-C under an mp::SigintGuard makes the waits throw mp::KeyboardInterrupt (the futures are
// untouched; the destructor then stops the workers at once). Workers ignore SIGINT and die with
// the parent.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "multiproc/callable.hpp"
#include "multiproc/context.hpp"
#include "multiproc/detail/engine.hpp"
#include "multiproc/detail/imap.hpp"
#include "multiproc/detail/initializer.hpp"
#include "multiproc/detail/map_source.hpp"
#include "multiproc/detail/owned.hpp"
#include "multiproc/detail/pull_iterator.hpp"
#include "multiproc/detail/result_state.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/detail/task.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/progress.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

template <class R>
class Future;

namespace detail {

/// Access to a Future's state for the free functions (as_completed, wait).
struct FutureAccess {
    template <class R>
    static ResultStateBase* state(const Future<R>& f) noexcept {
        return f.st_.get();
    }
};

template <class T>
struct is_future : std::false_type {};
template <class R>
struct is_future<Future<R>> : std::true_type {};

class CompletionOrder;
/// Deletes a CompletionOrder (defined in src/futures.cpp, so users never compile it).
struct CompletionOrderDeleter {
    void operator()(CompletionOrder* order) const noexcept;
};
/// Owns a CompletionOrder.
using CompletionOrderPtr = Owned<CompletionOrder, CompletionOrderDeleter>;
/// The completion order of `states` (the futures' states, in input order), ending at `timeout`.
CompletionOrderPtr make_completion_order(std::vector<ResultStateBase*> states, Timeout timeout);
/// The index (into the states given) of the next completed future, nullopt after the last;
/// mp::TimeoutError when the deadline passes first.
std::optional<std::size_t> next_completed(CompletionOrder& order);

}  // namespace detail

/// Decides when wait() may return (Python's return_when).
enum class ReturnWhen { first_completed, first_exception, all_completed };

/// wait() returns as soon as any future is done (Python's FIRST_COMPLETED).
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::first_completed;
/// wait() returns as soon as any future finishes with an exception, else when all are done.
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::first_exception;
/// wait() returns when every future is done (Python's ALL_COMPLETED, the default).
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::all_completed;

/// What wait() returns: positions in the range it was given, ascending (Python's
/// DoneAndNotDoneFutures, as indices so that they index the caller's own container).
struct DoneAndNotDoneFutures {
    std::vector<std::size_t> done;      ///< futures done (finished or cancelled)
    std::vector<std::size_t> not_done;  ///< the others
};

namespace detail {
DoneAndNotDoneFutures wait_futures(std::span<ResultStateBase* const> states, Timeout timeout,
                                   ReturnWhen when);
}  // namespace detail

/// The result of a task submitted to a ProcessPoolExecutor (Python's Future). Copies share the
/// same state; a default-constructed Future has none (valid() is false).
template <class R>
class Future {
public:
    using value_type = R;

    Future() = default;
    explicit Future(std::shared_ptr<detail::ResultState<R>> st) noexcept : st_(std::move(st)) {}

    /// Waits for the result and returns a copy of it (an rvalue Future moves it out), or
    /// rethrows the task's exception; mp::CancelledError when cancelled.
    R result(Timeout timeout = forever) const& {
        settle(timeout, "result");
        if constexpr (!std::is_void_v<R>) return st_->value();
    }
    /// result() moving the value out of a temporary Future.
    R result(Timeout timeout = forever) && {
        settle(timeout, "result");
        if constexpr (!std::is_void_v<R>) return std::move(st_->value());
    }
    /// Waits, then returns the task's exception (null when it returned normally);
    /// mp::CancelledError when cancelled, mp::TimeoutError after `timeout`.
    [[nodiscard]] std::exception_ptr exception(Timeout timeout = forever) const {
        wait_done(timeout, "exception");
        if (st_->status() == detail::ResultStateBase::Status::cancelled)
            throw CancelledError("mp::Future::exception: the future was cancelled");
        return st_->error();
    }
    /// True once finished or cancelled.
    [[nodiscard]] bool done() const noexcept { return st_->done(); }
    /// True while a worker holds the task (running, or next in its batch).
    [[nodiscard]] bool running() const noexcept {
        return st_->status() == detail::ResultStateBase::Status::running;
    }
    /// True when cancel() succeeded (or shutdown cancelled it).
    [[nodiscard]] bool cancelled() const noexcept {
        return st_->status() == detail::ResultStateBase::Status::cancelled;
    }
    /// Cancels the task if no worker has it yet: true then (or when already cancelled), false
    /// when it is running or done.
    bool cancel() { return st_->cancel(); }
    /// Cancels the task even when it runs (as ray.cancel(force=True)): a running task's worker
    /// is killed (SIGTERM, then SIGKILL) and replaced, the other tasks it held run elsewhere.
    /// The future is cancelled at once (result() throws mp::CancelledError); true unless done.
    bool cancel(force_t) { return st_->cancel(true); }
    /// Calls fn(future) once the future is done, at once (in this thread) if it already is. An
    /// exception escaping fn is reported on stderr and ignored, as Python logs it.
    template <class Fn>
    requires std::invocable < Fn&, Future<R>
    & > void add_done_callback(Fn fn) {
        st_->add_done_callback([fn = std::move(fn)](detail::ResultStateBase& s) mutable {
            Future<R> f(std::static_pointer_cast<detail::ResultState<R>>(s.shared_from_this()));
            fn(f);
        });
    }
    /// Blocks until done or the timeout passes; true when done.
    bool wait(Timeout timeout = forever) const { return st_->wait(detail::Deadline(timeout)); }
    /// True when the Future refers to a task.
    [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(st_); }

private:
    friend struct detail::FutureAccess;
    void wait_done(Timeout timeout, const char* what) const {
        if (!st_)
            throw UsageError(std::string("mp::Future::") + what + ": the future has no state");
        if (!st_->wait(detail::Deadline(timeout)))
            throw TimeoutError(std::string("mp::Future::") + what + ": timed out");
    }
    void settle(Timeout timeout, const char* what) const {
        wait_done(timeout, what);
        if (st_->status() == detail::ResultStateBase::Status::cancelled)
            throw CancelledError("mp::Future::result: the future was cancelled");
        if (auto e = st_->error()) std::rethrow_exception(e);
    }
    std::shared_ptr<detail::ResultState<R>> st_;
};

/// The futures of a range in completion order (Python's as_completed): a single-pass input
/// range whose elements are references to the range's own futures. Futures already done come
/// first; a future listed twice is yielded once. Iterating blocks; mp::TimeoutError once the
/// timeout (counted from the as_completed call) passes before the next one completes.
template <class Fut>
class AsCompleted {
public:
    /// Input iterator over the futures (each ++ may block, or throw mp::TimeoutError).
    using iterator = detail::PullIterator<AsCompleted, Fut>;

    /// Starts the iteration (waits for the first completed future).
    iterator begin() { return iterator(this); }
    /// The end.
    std::default_sentinel_t end() const noexcept { return {}; }

    AsCompleted(std::vector<Fut*> futures, Timeout timeout, const Progress& progress = {})
        : futures_(std::move(futures)),
          order_(detail::make_completion_order(states(futures_), timeout)),
          progress_(progress, futures_.size(), "as_completed") {}

private:
    friend iterator;
    Fut* pull() {
        const auto i = detail::next_completed(*order_);
        if (!i) {
            progress_.end();
            return nullptr;
        }
        progress_.step();
        return futures_[*i];
    }
    static std::vector<detail::ResultStateBase*> states(const std::vector<Fut*>& fs) {
        std::vector<detail::ResultStateBase*> s;
        s.reserve(fs.size());
        for (auto* f : fs) s.push_back(detail::FutureAccess::state(*f));
        return s;
    }
    std::vector<Fut*> futures_;
    detail::CompletionOrderPtr order_;
    detail::StepProgress progress_;
};

/// as_completed, reporting progress as the futures are yielded (mp::progress_bar(),
/// mp::progress_callback(f)).
template <std::ranges::range Range>
requires detail::is_future<std::remove_cvref_t<std::ranges::range_value_t<Range>>>::value &&
    std::is_lvalue_reference_v<std::ranges::range_reference_t<Range>>
auto as_completed(Range& futures, const Progress& progress, Timeout timeout = forever) {
    using Fut = std::remove_reference_t<std::ranges::range_reference_t<Range>>;
    std::vector<Fut*> ptrs;
    for (auto& f : futures) {
        if (!f.valid()) throw UsageError("mp::as_completed: a future has no state");
        ptrs.push_back(std::addressof(f));
    }
    return AsCompleted<Fut>(std::move(ptrs), timeout, progress);
}

/// The futures of `futures` (a range of mp::Future<R>, which must outlive the iteration) in
/// completion order; mp::TimeoutError from the iteration once `timeout` has passed since this
/// call with futures still unfinished.
template <std::ranges::range Range>
requires detail::is_future<std::remove_cvref_t<std::ranges::range_value_t<Range>>>::value &&
    std::is_lvalue_reference_v<std::ranges::range_reference_t<Range>>
auto as_completed(Range& futures, Timeout timeout = forever) {
    return as_completed(futures, Progress(), timeout);
}

/// Waits until return_when is satisfied or the timeout passes (Python's
/// concurrent.futures.wait), then returns the positions of the done and not-done futures.
template <std::ranges::range Range>
requires detail::is_future<std::remove_cvref_t<std::ranges::range_value_t<Range>>>::value
    DoneAndNotDoneFutures
    wait(const Range& futures, Timeout timeout = forever, ReturnWhen return_when = ALL_COMPLETED) {
    std::vector<detail::ResultStateBase*> states;
    for (const auto& f : futures) {
        if (!f.valid()) throw UsageError("mp::wait: a future has no state");
        states.push_back(detail::FutureAccess::state(f));
    }
    return detail::wait_futures(std::span<detail::ResultStateBase* const>(states.data(),
                                                                          states.size()),
                                timeout, return_when);
}

/// Options of a ProcessPoolExecutor (Python's initializer, initargs, max_tasks_per_child,
/// mp_context), plus retries of a task whose worker died.
struct ExecutorOptions {
    Initializer initializer;              ///< run in every worker before its first task
    std::size_t max_tasks_per_child = 0;  ///< replace a worker after this many tasks (0: never)
    std::optional<Context> context;       ///< start method of the workers (default: the default)
    int retries = 0;                      ///< re-runs of a task whose worker died
    /// Time limit of every task (every item of a map), counted from its start in a worker;
    /// past it the worker is killed and the future holds mp::TimeoutError (docs/futures.md).
    Timeout task_timeout = forever;
    bool retry_timeouts = false;  ///< a timed-out task is retried (within `retries`)
    /// Replace a worker whose resident set exceeds this many bytes after a batch (0: never).
    std::size_t max_memory_per_child = 0;
};

namespace detail {

class ExecutorSource;
/// Queues one submitted call of the executor's task source (src/futures.cpp), st its future.
void push_task(ExecutorSource& src, std::shared_ptr<ResultStateBase> st, OwnedCall call,
               std::int64_t timeout_ns);

}  // namespace detail

/// A pool of worker processes running submitted calls (Python's
/// concurrent.futures.ProcessPoolExecutor).
class ProcessPoolExecutor {
public:
    /// Starts `max_workers` workers (default mp::process_cpu_count()). mp::UsageError when < 1.
    explicit ProcessPoolExecutor(std::optional<int> max_workers = std::nullopt,
                                 ExecutorOptions options = {});
    ProcessPoolExecutor(const ProcessPoolExecutor&) = delete;
    ProcessPoolExecutor& operator=(const ProcessPoolExecutor&) = delete;
    /// shutdown(true): waits for every submitted task, then stops the workers.
    ~ProcessPoolExecutor();

    /// Schedules f(args...) in a worker and returns its Future at once. mp::UsageError after
    /// shutdown(); mp::BrokenProcessPool once the initializer failed.
    template <class F, class... Args>
    auto submit(const F& f, const Args&... args) {
        return submit(TaskTimeout{-1}, f, args...);
    }
    /// submit with its own time limit (mp::task_timeout(2s)) instead of the executor's.
    template <class F, class... Args>
    auto submit(TaskTimeout limit, const F& f, const Args&... args) {
        using R = detail::task_result_t<F, Args...>;
        detail::OwnedCall call = detail::package_pool_task(f, args...);
        auto st = std::make_shared<detail::ResultState<R>>();
        detail::push_task(*source_, st, std::move(call), limit.ns);
        return Future<R>(std::move(st));
    }

    /// f over the range, results read lazily in input order (Python's Executor.map): the
    /// returned mp::IMapIterator throws an item's exception when that item is reached, and
    /// mp::TimeoutError once `timeout`, counted from this call, passes. The input is copied now;
    /// chunksize 0 adapts chunks to the task time (Python's default is 1). Destroying the
    /// iterator cancels the items not started yet, as Python's generator does;
    /// cancel(mp::force) on it also kills the workers running its items (docs/futures.md).
    template <class F, std::ranges::input_range Range>
    auto map(const F& f, Range&& range, Timeout timeout = forever, std::size_t chunksize = 0) {
        return map(f, std::forward<Range>(range), Progress(), timeout, chunksize);
    }
    /// map, reporting its progress as the results are read (mp::progress_bar(),
    /// mp::progress_callback(f)).
    template <class F, std::ranges::input_range Range>
    auto map(const F& f, Range&& range, Progress progress, Timeout timeout = forever,
             std::size_t chunksize = 0) {
        using V = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        static_assert(detail::check_map<F, V>(), "see the diagnostic above");
        using R = detail::map_result_t<F, V>;
        static_assert(
            std::is_void_v<R> || std::is_default_constructible_v<R>,
            "mp::ProcessPoolExecutor::map: the result type must be default constructible");
        const detail::Deadline deadline(timeout);
        check_open("map");
        auto items = detail::materialize<V>(std::forward<Range>(range));
        detail::StepProgress steps(progress, items.size(), "Executor.map");
        auto src =
            std::make_shared<detail::OrderedMapSource<std::decay_t<F>, V, R>>(f, std::move(items),
                                                                              chunksize, *engine_,
                                                                              false, deadline);
        track(src);
        engine_->submit(src);
        return IMapIterator<R>(std::move(src), std::move(steps));
    }

    /// Stops accepting work; with cancel_futures, cancels every future not started yet; with
    /// wait, blocks until every started task is done and the workers have exited (Python's
    /// shutdown). Idempotent.
    void shutdown(bool wait = true, bool cancel_futures = false);
    /// Sends SIGTERM to every worker (SIGKILL to those still alive after a short grace), fails
    /// every future not done with mp::BrokenProcessPool and shuts the executor down (Python
    /// 3.14's terminate_workers); submit() then throws that error too. Returns once the
    /// workers are gone; never hangs.
    void terminate_workers();
    /// As terminate_workers, with SIGKILL at once (Python 3.14's kill_workers).
    void kill_workers();

    /// The number of worker processes.
    [[nodiscard]] int max_workers() const noexcept;
    /// Pids of the current workers (diagnostics).
    [[nodiscard]] std::vector<pid_t> worker_pids() const;
    /// What the workers have done so far: a consistent snapshot (multiproc/engine_stats.hpp).
    [[nodiscard]] PoolStats stats() const;

private:
    void check_open(const char* what) const;
    void stop_workers(bool gently);
    void track(std::shared_ptr<detail::MapSourceBase> src);

    detail::Owned<detail::Engine> engine_;
    std::shared_ptr<detail::ExecutorSource> source_;
    std::mutex maps_m_;
    std::vector<std::weak_ptr<detail::MapSourceBase>> maps_;
    std::atomic<bool> shutdown_{false};
    std::atomic<bool> joined_{false};
    std::mutex join_m_;
};

}  // namespace mp
