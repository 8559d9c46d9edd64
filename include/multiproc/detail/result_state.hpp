// The result state behind mp::AsyncResult (Pool) and mp::Future (ProcessPoolExecutor): a value
// or an exception, set once by whoever completes the task (the engine's thread, or a thread
// that cancels), read by any number of threads.
//
// Completion runs, in this order: the result hooks (AsyncResult's callback or error_callback:
// Python runs them before the result is ready, so get() returns after them), then publication
// (status, waiters of as_completed/wait, blocked waits woken), then the done callbacks
// (Future::add_done_callback: Python runs them once the future is done). An exception escaping
// a hook or a callback is reported on stderr and ignored, as Python logs it.
//
// Thread safety: every member may be called from any thread; the hooks must be installed
// before the state is shared.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <type_traits>
#include <variant>
#include <vector>

#include "multiproc/detail/engine.hpp"
#include "multiproc/detail/fd.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/detail/task.hpp"
#include "multiproc/timeout.hpp"

namespace mp::detail {

class ResultWaiter;

/// The part of a result state that does not depend on the result type: status, exception,
/// hooks, callbacks, waiters.
class ResultStateBase : public std::enable_shared_from_this<ResultStateBase> {
public:
    /// pending (queued), running (a worker has it), then cancelled or finished, once.
    enum class Status : std::uint8_t { pending, running, cancelled, finished };

    ResultStateBase() = default;
    ResultStateBase(const ResultStateBase&) = delete;
    ResultStateBase& operator=(const ResultStateBase&) = delete;
    virtual ~ResultStateBase();

    /// The status (acquire: once done, the value or exception is visible).
    [[nodiscard]] Status status() const noexcept { return status_.load(std::memory_order_acquire); }
    /// True once finished or cancelled.
    [[nodiscard]] bool done() const noexcept {
        const Status s = status();
        return s == Status::finished || s == Status::cancelled;
    }
    /// pending -> running (true); false when it was cancelled (Python's
    /// set_running_or_notify_cancel).
    bool set_running_or_notify_cancel() noexcept;
    /// Where a forced cancel sends its kill request: the engine, the source and its tag
    /// (EngineLink::every_task for a map's result: every task of the source).
    struct KillRoute {
        EngineLink engine;
        std::weak_ptr<TaskSource> src;
        std::uint64_t tag = 0;
    };
    /// set_running_or_notify_cancel, remembering how to kill the task (cancel(true)).
    bool set_running(KillRoute route) noexcept;
    /// Cancels a pending state, or with `force` a running one too (its worker, or for a map
    /// every worker running one of its tasks, is killed through the route set_running was
    /// given; the state is cancelled at once); true when it is (or already was) cancelled,
    /// false when done, or running without force or route.
    bool cancel(bool force = false);
    /// Finishes with an exception (no-op once done).
    void set_error(std::exception_ptr e);
    /// Finishes from a task's result bytes (the value, or the transported exception).
    virtual void set_result_bytes(std::span<const std::byte> bytes, std::span<UniqueFd> fds) = 0;
    /// Blocks until done (true) or the deadline (false); Ctrl-C as Notifier::wait.
    bool wait(Deadline d);
    /// The exception it finished with (null for a value or while not done).
    [[nodiscard]] std::exception_ptr error() const noexcept;
    /// Runs cb(*this) once done (now, in this thread, when it already is).
    void add_done_callback(std::function<void(ResultStateBase&)> cb);
    /// Registers w to be told of completion; false (nothing registered) when already done.
    bool add_waiter(ResultWaiter* w);
    /// Unregisters w; after it returns w is never called for this state.
    void remove_waiter(ResultWaiter* w) noexcept;

    /// Run by the completing thread before publication when the state finishes with a value
    /// (AsyncResult's callback); set before the state is shared.
    std::function<void(ResultStateBase&)> on_value_;
    /// The same when it finishes with an exception (AsyncResult's error_callback).
    std::function<void(const std::exception_ptr&)> on_error_;

protected:
    /// Claims the right to finish (false when done or claimed already).
    bool claim();
    /// Publishes a finished (or cancelled) state: runs the hooks, wakes waiters, runs callbacks.
    void publish(Status final, std::exception_ptr error);

private:
    void run_hooks() noexcept;

    mutable std::mutex m_;
    std::atomic<Status> status_{Status::pending};
    bool claimed_ = false;
    std::exception_ptr error_;
    std::vector<std::function<void(ResultStateBase&)>> callbacks_;
    std::vector<ResultWaiter*> waiters_;
    // Meaningful while has_route_ (no std::optional: every program would instantiate it).
    KillRoute route_{EngineLink(nullptr), {}, 0};
    bool has_route_ = false;
    Notifier notifier_;
};

/// A result state holding an R (std::monostate for void).
template <class R>
class ResultState final : public ResultStateBase {
public:
    using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

    /// Finishes with a value (no-op once done).
    void set_value(Stored v) {
        if (!claim()) return;
        value_.emplace(std::move(v));
        publish(Status::finished, nullptr);
    }
    void set_result_bytes(std::span<const std::byte> bytes, std::span<UniqueFd> fds) override {
        try {
            if constexpr (std::is_void_v<R>) {
                decode_task_result<void>(bytes, fds);
                set_value({});
            } else {
                set_value(decode_task_result<R>(bytes, fds));
            }
        } catch (...) {
            set_error(std::current_exception());
        }
    }
    /// The value; only once finished without an exception.
    Stored& value() noexcept { return *value_; }

private:
    std::optional<Stored> value_;
};

/// Told by ResultStateBase when a watched state completes (as_completed, wait).
class ResultWaiter {
public:
    /// Called with the state's lock held.
    void on_done(ResultStateBase* s);
    /// Completed states not taken yet, in completion order.
    std::vector<ResultStateBase*> take();
    /// Blocks until there is something to take (true) or the deadline passes (false).
    bool wait(Deadline d);

private:
    std::mutex m_;
    std::vector<ResultStateBase*> done_;
    Notifier notifier_;
};

}  // namespace mp::detail
