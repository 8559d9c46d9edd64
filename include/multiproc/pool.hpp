// mp::Pool: a pool of worker processes (Python's multiprocessing.Pool), on the task engine.
//
//   mp::Pool pool(4);
//   std::vector<int> r = pool.map(square, std::vector<int>{1, 2, 3, 4});   // {1, 4, 9, 16}
//   auto a = pool.apply_async(square, 10);
//   int hundred = a.get();            // an exception thrown in the worker is rethrown here
//   for (int x : pool.imap(square, std::views::iota(0))) { ... }          // endless, lazily
//
// Across processes: tasks travel by function identity and the codec (DESIGN.md 1, 2), under
// every start method; a target or argument that cannot travel is a compile-time error saying
// why. A std::vector of a trivially copyable type of 1 MiB or more reaches the worker through
// shared memory (a memfd), and when the function takes a std::span<const T> it reads that
// memory in place. Exceptions come back as the same standard type, else as mp::RemoteError
// with the remote stack trace (DESIGN.md 6), to get(), map(), imap iteration and the error
// callbacks.
//
// Crashes: a worker that dies (SIGKILL, segfault, abort, std::terminate, std::exit inside a
// task) fails exactly the work item it was running with mp::BrokenProcessPool naming its pid and
// its signal or exit code; it is replaced and every other task completes (with retries = N in
// PoolOptions the item is first retried on other workers, and fails with its history once it
// has killed N + 1 of them). Nothing ever waits forever: an initializer that fails breaks the
// pool with a clear error, and terminate() or the destructor fail every pending result.
//
// Thread safety: every member may be called from several threads at once (submissions from
// many threads are safe), except that the destructor must not race with other calls. Callbacks
// run in the parent, on the pool's supervisor thread, one at a time: keep them short, and do
// not wait in them for results of the same pool.
//
// Blocking and signals (docs/signals.md): apply, map, starmap, AsyncResult::get/wait, imap
// iteration and join block. A signal handler that runs meanwhile (SIGALRM, SIGCHLD, ...) never
// makes them fail: they go on waiting against their original deadline (PEP 475). Ctrl-C under
// an mp::SigintGuard makes them throw mp::KeyboardInterrupt: an interrupted map cancels its
// items not sent yet (running ones finish, their results dropped); an interrupted get, wait or
// imap step loses nothing (call it again). The pool stays usable, with the same workers; its
// destructor terminates it, as Python's `with Pool() as p:` does. Without a guard, SIGINT's
// default disposition kills the program and its workers die with it (they are daemonic, with
// PR_SET_PDEATHSIG). Workers ignore SIGINT themselves, so a Ctrl-C never kills one mid-task.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "multiproc/context.hpp"
#include "multiproc/detail/engine.hpp"
#include "multiproc/detail/imap.hpp"
#include "multiproc/detail/initializer.hpp"
#include "multiproc/detail/map_source.hpp"
#include "multiproc/detail/owned.hpp"
#include "multiproc/detail/result_state.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/detail/task.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/progress.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

/// Options of a Pool (Python's Pool(initializer, initargs, maxtasksperchild, context)).
struct PoolOptions {
    Initializer initializer;           ///< run in every worker before its first task
    std::size_t maxtasksperchild = 0;  ///< replace a worker after this many tasks (0: never)
    std::optional<Context> context;    ///< start method of the workers (default: the default)
    int retries = 0;                   ///< re-runs of a work item whose worker died
    /// Time limit of every task (of every item of a map), counted from its start in a worker;
    /// past it the worker is killed and the task fails with mp::TimeoutError (docs/pool.md).
    Timeout task_timeout = forever;
    bool retry_timeouts = false;  ///< a timed-out task is retried (within `retries`)
    /// Replace a worker whose resident set exceeds this many bytes after a batch (0: never).
    std::size_t max_memory_per_child = 0;
};

namespace detail {
struct NoCallback {};
/// Cancels the items of a map not sent yet when the wait for it ends (normally: none are left).
struct CancelRemaining {
    MapSourceBase* src;
    ~CancelRemaining() { src->cancel_remaining(); }
};
}  // namespace detail

/// A result callback and an error callback for apply_async / map_async / starmap_async, run in
/// the parent when the result arrives (callback(const R&), or callback() for void results) or
/// when it failed (error_callback(std::exception_ptr)).
template <class C, class E = detail::NoCallback>
struct Callbacks {
    C callback;
    E error_callback;
};

/// Makes a Callbacks (callback, and optionally error_callback).
template <class C, class E = detail::NoCallback>
Callbacks<C, E> callbacks(C callback, E error_callback = {}) {
    return {std::move(callback), std::move(error_callback)};
}
/// Only an error callback.
template <class E>
Callbacks<detail::NoCallback, E> error_callback(E error_callback) {
    return {{}, std::move(error_callback)};
}

template <class R>
class AsyncResult;

namespace detail {

/// Makes cbs the result hooks of st: Python runs a callback before the result is ready.
template <class R, class C, class E>
void install_callbacks(ResultState<R>& st, Callbacks<C, E>& cbs) {
    if constexpr (!std::is_same_v<C, NoCallback>) {
        st.on_value_ = [cb = std::move(cbs.callback)](ResultStateBase& s) mutable {
            if constexpr (std::is_void_v<R>) {
                static_cast<void>(s);
                cb();
            } else {
                cb(static_cast<const R&>(static_cast<ResultState<R>&>(s).value()));
            }
        };
    }
    if constexpr (!std::is_same_v<E, NoCallback>) {
        st.on_error_ = [cb = std::move(cbs.error_callback)](const std::exception_ptr& e) mutable {
            cb(e);
        };
    }
}

template <class R>
class ApplySource;

}  // namespace detail

/// A pool of worker processes (Python's multiprocessing.Pool).
class Pool {
public:
    /// Starts `processes` workers (default mp::cpu_count()). mp::UsageError when < 1.
    explicit Pool(std::optional<int> processes = std::nullopt, PoolOptions options = {});
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;
    /// terminate(), as Python's Pool.__exit__: pending results fail with BrokenProcessPool.
    ~Pool();

    /// f(args...) in a worker; blocks for the result, rethrows its exception.
    template <class F, class... Args>
    auto apply(const F& f, const Args&... args) {
        return apply_async(f, args...).get();
    }

    /// f(args...) in a worker; returns at once.
    template <class F, class... Args>
    auto apply_async(const F& f, const Args&... args) {
        return apply_async(Callbacks<detail::NoCallback>{}, f, args...);
    }
    /// apply_async with a callback and/or error callback (mp::callbacks(...)).
    template <class C, class E, class F, class... Args>
    auto apply_async(Callbacks<C, E> cbs, const F& f, const Args&... args) {
        return apply_async(std::move(cbs), TaskTimeout{-1}, f, args...);
    }
    /// apply_async with its own time limit (mp::task_timeout(2s)), instead of the pool's.
    template <class F, class... Args>
    auto apply_async(TaskTimeout limit, const F& f, const Args&... args) {
        return apply_async(Callbacks<detail::NoCallback>{}, limit, f, args...);
    }
    /// apply_async with callbacks and its own time limit.
    template <class C, class E, class F, class... Args>
    auto apply_async(Callbacks<C, E> cbs, TaskTimeout limit, const F& f, const Args&... args) {
        using R = detail::task_result_t<F, Args...>;
        detail::OwnedCall call = detail::package_pool_task(f, args...);
        check_running("apply_async");
        auto st = std::make_shared<detail::ResultState<R>>();
        detail::install_callbacks(*st, cbs);
        engine_->submit(std::make_shared<detail::ApplySource<R>>(std::move(call), st, *engine_,
                                                                 limit.ns));
        return AsyncResult<R>(std::move(st));
    }

    /// [f(x) for x in range], in input order; chunksize 0 adapts to the task duration.
    template <class F, std::ranges::input_range Range>
    auto map(const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_wait<false>(f, std::forward<Range>(range), chunksize, nullptr);
    }
    /// map, reporting its progress (mp::progress_bar(), mp::progress_callback(f)).
    template <class F, std::ranges::input_range Range>
    auto map(const F& f, Range&& range, Progress progress, std::size_t chunksize = 0) {
        return map_wait<false>(f, std::forward<Range>(range), chunksize, &progress);
    }
    /// map, returning at once.
    template <class F, std::ranges::input_range Range>
    auto map_async(const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_impl<false>(Callbacks<detail::NoCallback>{}, f, std::forward<Range>(range),
                               chunksize);
    }
    /// map_async with callbacks (the callback receives the whole result vector).
    template <class C, class E, class F, std::ranges::input_range Range>
    auto map_async(Callbacks<C, E> cbs, const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_impl<false>(std::move(cbs), f, std::forward<Range>(range), chunksize);
    }
    /// [f(a, b, ...) for (a, b, ...) in range of tuples], in input order.
    template <class F, std::ranges::input_range Range>
    auto starmap(const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_wait<true>(f, std::forward<Range>(range), chunksize, nullptr);
    }
    /// starmap, reporting its progress (mp::progress_bar(), mp::progress_callback(f)).
    template <class F, std::ranges::input_range Range>
    auto starmap(const F& f, Range&& range, Progress progress, std::size_t chunksize = 0) {
        return map_wait<true>(f, std::forward<Range>(range), chunksize, &progress);
    }
    /// starmap, returning at once.
    template <class F, std::ranges::input_range Range>
    auto starmap_async(const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_impl<true>(Callbacks<detail::NoCallback>{}, f, std::forward<Range>(range),
                              chunksize);
    }
    /// starmap_async with callbacks.
    template <class C, class E, class F, std::ranges::input_range Range>
    auto starmap_async(Callbacks<C, E> cbs, const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_impl<true>(std::move(cbs), f, std::forward<Range>(range), chunksize);
    }

    /// Results of f over the input, in input order, read lazily: at most `buffersize` items
    /// (default 65536) are read ahead of the consumer, so the input may be endless. An lvalue
    /// range is referenced (it must outlive the iteration), an rvalue one is moved in.
    template <class F, std::ranges::input_range Range>
    auto imap(const F& f, Range&& range, std::size_t chunksize = 0, std::size_t buffersize = 0) {
        return imap_impl<false, true>(f, std::forward<Range>(range), chunksize, buffersize, {});
    }
    /// imap, reporting its progress as the results are read (the total is known when the
    /// range is sized).
    template <class F, std::ranges::input_range Range>
    auto imap(const F& f, Range&& range, Progress progress, std::size_t chunksize = 0,
              std::size_t buffersize = 0) {
        return imap_impl<false, true>(f, std::forward<Range>(range), chunksize, buffersize,
                                      std::move(progress));
    }
    /// imap, in completion order.
    template <class F, std::ranges::input_range Range>
    auto imap_unordered(const F& f, Range&& range, std::size_t chunksize = 0,
                        std::size_t buffersize = 0) {
        return imap_impl<false, false>(f, std::forward<Range>(range), chunksize, buffersize, {});
    }
    /// imap_unordered, reporting its progress as the results are read.
    template <class F, std::ranges::input_range Range>
    auto imap_unordered(const F& f, Range&& range, Progress progress, std::size_t chunksize = 0,
                        std::size_t buffersize = 0) {
        return imap_impl<false, false>(f, std::forward<Range>(range), chunksize, buffersize,
                                       std::move(progress));
    }

    /// No more tasks may be submitted; workers exit once the pending ones are done.
    void close();
    /// Stops the workers now; pending results fail with mp::BrokenProcessPool.
    void terminate() noexcept;
    /// Waits for the workers to exit (after close() or terminate(); else mp::UsageError).
    void join();

    /// The number of worker processes.
    [[nodiscard]] int processes() const noexcept;
    /// Pids of the current workers (diagnostics).
    [[nodiscard]] std::vector<pid_t> worker_pids() const;
    /// What the workers have done so far: a consistent snapshot (multiproc/engine_stats.hpp).
    [[nodiscard]] PoolStats stats() const;

private:
    // The source of a map over range, not submitted yet (map, map_async, starmap...).
    template <bool Star, class F, class Range>
    auto make_map_source(const F& f, Range&& range, std::size_t chunksize) {
        using V = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        static_assert(detail::check_chunk<Star, F, V>(),
                      "mp::Pool: the function or the items of this map cannot be shipped to a "
                      "worker process (the reason is in the other diagnostics of this error)");
        using R = detail::chunk_result_t<Star, F, V>;
        static_assert(std::is_void_v<R> || std::is_default_constructible_v<R>,
                      "mp::Pool::map: the result type must be default constructible");
        check_running("map");
        using Src = detail::OrderedMapSource<std::decay_t<F>, V, R, Star, false>;
        return std::make_shared<Src>(f, detail::materialize<V>(std::forward<Range>(range)),
                                     chunksize, *engine_, false);
    }

    // map and starmap: waits for the source itself (no result state is needed), and cancels
    // the items not sent yet when the wait ends early (Ctrl-C), as Python's map.
    template <bool Star, class F, class Range>
    auto map_wait(const F& f, Range&& range, std::size_t chunksize, const Progress* progress) {
        auto src = make_map_source<Star>(f, std::forward<Range>(range), chunksize);
        engine_->submit(src);
        const detail::CancelRemaining guard{src.get()};
        detail::wait_with_progress(*src, progress ? *progress : Progress(),
                                   Star ? "Pool.starmap" : "Pool.map");
        if constexpr (std::is_void_v<typename decltype(src)::element_type::result_type>)
            src->take_results();
        else return src->take_results();
    }

    // map_async and starmap_async: the results are handed to an AsyncResult when the last item
    // settles.
    template <bool Star, class C, class E, class F, class Range>
    auto map_impl(Callbacks<C, E> cbs, const F& f, Range&& range, std::size_t chunksize) {
        auto src = make_map_source<Star>(f, std::forward<Range>(range), chunksize);
        using R = typename decltype(src)::element_type::result_type;
        using Res = std::conditional_t<std::is_void_v<R>, void, std::vector<R>>;
        auto st = std::make_shared<detail::ResultState<Res>>();
        detail::install_callbacks(*st, cbs);
        // Running from its first chunk on; cancel(mp::force) then stops the whole map.
        src->when_started([st, ws = std::weak_ptr<detail::TaskSource>(src), e = engine_->link()] {
            return st->set_running({e, ws, detail::EngineLink::every_task});
        });
        // The source owns the hook, so a plain pointer back to it cannot dangle.
        src->when_done([st, s = src.get()] {
            try {
                if constexpr (std::is_void_v<Res>) {
                    s->take_results();
                    st->set_value({});
                } else {
                    st->set_value(s->take_results());
                }
            } catch (...) {
                st->set_error(std::current_exception());
            }
        });
        engine_->submit(src);
        return AsyncResult<Res>(std::move(st));
    }

    template <bool Star, bool Ordered, class F, class Range>
    auto imap_impl(const F& f, Range&& range, std::size_t chunksize, std::size_t buffersize,
                   Progress progress) {
        using V = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        static_assert(detail::check_chunk<Star, F, V>(),
                      "mp::Pool: the function or the items of this map cannot be shipped to a "
                      "worker process (the reason is in the other diagnostics of this error)");
        using R = detail::chunk_result_t<Star, F, V>;
        check_running("imap");
        std::optional<std::size_t> total;
        if constexpr (std::ranges::sized_range<Range>)
            total = static_cast<std::size_t>(std::ranges::size(range));
        detail::StepProgress steps(progress, total, Ordered ? "Pool.imap" : "Pool.imap_unordered");
        auto src = std::make_shared<detail::IMapSource<Star, Ordered, std::decay_t<F>, Range, R>>(
            f, detail::HeldRange<Range>(std::forward<Range>(range)), chunksize,
            buffersize ? buffersize : std::size_t{1} << 16, *engine_);
        engine_->submit(src);
        return IMapIterator<R>(std::move(src), std::move(steps));
    }

    void check_running(const char* what) const;

    detail::Owned<detail::Engine> engine_;
    std::atomic<int> state_{0};  // 0 running, 1 closed, 2 terminated
};

/// The result of an *_async call (Python's AsyncResult). Copies share the result.
template <class R>
class AsyncResult {
public:
    using value_type = std::conditional_t<std::is_void_v<R>, void, R>;

    /// Waits for the result and returns a copy of it (an rvalue AsyncResult moves it out), or
    /// rethrows the task's exception. mp::KeyboardInterrupt on Ctrl-C under mp::SigintGuard.
    R get() const& { return get(forever); }
    /// The same, waiting at most `timeout` (then mp::TimeoutError).
    R get(Timeout timeout) const& {
        wait_or_throw(timeout);
        if constexpr (!std::is_void_v<R>) return st_->value();
    }
    /// get() moving the result out of a temporary AsyncResult.
    R get() && { return std::move(*this).get(forever); }
    /// get(timeout) moving the result out of a temporary AsyncResult.
    R get(Timeout timeout) && {
        wait_or_throw(timeout);
        if constexpr (!std::is_void_v<R>) return std::move(st_->value());
    }
    /// Waits until the result is ready or the timeout passes; true when ready.
    bool wait(Timeout timeout = forever) const { return st_->wait(detail::Deadline(timeout)); }
    /// True once the result (or the exception) is there.
    [[nodiscard]] bool ready() const noexcept { return st_->done(); }
    /// Cancels a task (a map) that no worker has yet (as Future::cancel): true then (or when
    /// already cancelled); false once a worker holds it (any chunk of a map), and when done.
    bool cancel() { return st_->cancel(); }
    /// Cancels even when it runs, by killing its worker (for a map: nothing more of it is
    /// sent, and every worker running one of its chunks is killed); killed workers are
    /// replaced and their other tasks run elsewhere. True unless done; get() then throws
    /// mp::CancelledError.
    bool cancel(force_t) { return st_->cancel(true); }
    /// True when cancel() succeeded.
    [[nodiscard]] bool cancelled() const noexcept {
        return st_->status() == detail::ResultStateBase::Status::cancelled;
    }
    /// True when the task completed without an exception; mp::UsageError when not ready yet.
    [[nodiscard]] bool successful() const {
        if (!ready()) throw UsageError("mp::AsyncResult::successful: the result is not ready");
        return !st_->error() && !cancelled();
    }

    explicit AsyncResult(std::shared_ptr<detail::ResultState<R>> st) noexcept
        : st_(std::move(st)) {}

private:
    // Waits, then rethrows the task's exception (mp::CancelledError once cancelled).
    void wait_or_throw(Timeout timeout) const {
        if (!st_->wait(detail::Deadline(timeout)))
            throw TimeoutError("mp::AsyncResult::get: timed out");
        if (st_->status() == detail::ResultStateBase::Status::cancelled)
            throw CancelledError("mp::AsyncResult::get: the task was cancelled");
        if (auto e = st_->error()) std::rethrow_exception(e);
    }
    std::shared_ptr<detail::ResultState<R>> st_;
};

namespace detail {

/// One apply_async call: one task (tag 0), with its own time limit (TaskSlot::timeout_ns).
template <class R>
class ApplySource final : public TaskSource, public std::enable_shared_from_this<ApplySource<R>> {
public:
    ApplySource(OwnedCall call, std::shared_ptr<ResultState<R>> st, const Engine& engine,
                std::int64_t timeout_ns)
        : call_(std::move(call)), st_(std::move(st)), engine_(engine.link()),
          timeout_ns_(timeout_ns) {}
    bool pull(std::size_t, TaskSlot& slot) override {
        if (pulled_) return false;
        pulled_ = true;
        if (!st_->set_running({engine_, this->weak_from_this(), 0})) return false;  // cancelled
        slot.call = std::move(call_);
        slot.timeout_ns = timeout_ns_;
        return true;
    }
    bool exhausted() const override { return pulled_; }
    std::optional<std::size_t> remaining() const override { return pulled_ ? 0 : 1; }
    void complete(std::uint64_t, std::span<const std::byte> bytes,
                  std::span<UniqueFd> fds) override {
        st_->set_result_bytes(bytes, fds);
    }
    void fail(std::uint64_t, std::exception_ptr e) override { st_->set_error(std::move(e)); }
    void abandon(std::exception_ptr e) override { st_->set_error(std::move(e)); }

private:
    OwnedCall call_;
    bool pulled_ = false;
    std::shared_ptr<ResultState<R>> st_;
    EngineLink engine_;
    std::int64_t timeout_ns_;
};

}  // namespace detail

}  // namespace mp
