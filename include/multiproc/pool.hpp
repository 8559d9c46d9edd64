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
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "multiproc/callable.hpp"
#include "multiproc/context.hpp"
#include "multiproc/detail/engine.hpp"
#include "multiproc/detail/map_source.hpp"
#include "multiproc/detail/task.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

/// A function and its arguments, run once in every worker before its first task (Python's
/// initializer + initargs). Checked at compile time like a task.
class Initializer {
public:
    /// No initializer.
    Initializer() = default;
    /// Runs f(args...) in every worker at its start.
    template <class F, class... Args>
    explicit Initializer(const F& f, const Args&... args)
        : call_(std::make_shared<detail::OwnedCall>(detail::package_pool_task(f, args...))) {}
    /// True when there is none.
    [[nodiscard]] bool empty() const noexcept { return !call_; }
    /// A copy of the packaged call (descriptors duplicated), for an engine.
    [[nodiscard]] std::optional<detail::OwnedCall> call() const;

private:
    std::shared_ptr<const detail::OwnedCall> call_;
};

/// Options of a Pool (Python's Pool(initializer, initargs, maxtasksperchild, context)).
struct PoolOptions {
    Initializer initializer;              ///< run in every worker before its first task
    std::size_t maxtasksperchild = 0;     ///< replace a worker after this many tasks (0: never)
    std::optional<Context> context;       ///< start method of the workers (default: the default)
    int retries = 0;                      ///< re-runs of a work item whose worker died
};

namespace detail {
struct NoCallback {};

/// The engine options of a pool front end (Pool, ProcessPoolExecutor): `processes` workers
/// with the settings of `options`, named `owner` in error messages.
EngineOptions pool_engine_options(const char* owner, int processes, const PoolOptions& options);
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

namespace detail {

/// Writes `prefix` and the exception being handled to stderr in one write; call it in a catch
/// block. Python prints a failing callback's traceback and carries on: so does a pool.
void report_current_exception(const std::string& prefix) noexcept;
/// Reports an exception that escaped a user callback (it must not take the pool down).
void report_callback_error(const char* which) noexcept;

/// The shared state behind an AsyncResult: a value or an exception, set once.
template <class R>
class ResultState {
public:
    using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

    bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }

    void set_value(Stored v) {
        {
            std::lock_guard lk(m_);
            if (set_) return;
            set_ = true;
            value_.emplace(std::move(v));
        }
        if (on_value_) {
            try {
                on_value_(*value_);
            } catch (...) {
                report_callback_error("callback");
            }
        }
        publish();
    }
    void set_error(std::exception_ptr e) {
        {
            std::lock_guard lk(m_);
            if (set_) return;
            set_ = true;
            error_ = std::move(e);
        }
        if (on_error_) {
            try {
                on_error_(error_);
            } catch (...) {
                report_callback_error("error_callback");
            }
        }
        publish();
    }
    bool wait(Deadline d) {
        return notifier_.wait([this] { return ready(); }, d);
    }
    Stored& value() {
        if (error_) std::rethrow_exception(error_);
        return *value_;
    }
    bool successful() const noexcept { return !error_; }

    std::function<void(Stored&)> on_value_;
    std::function<void(const std::exception_ptr&)> on_error_;

private:
    void publish() {
        ready_.store(true, std::memory_order_release);
        notifier_.notify_all();
    }
    std::mutex m_;
    bool set_ = false;
    std::atomic<bool> ready_{false};
    std::optional<Stored> value_;
    std::exception_ptr error_;
    Notifier notifier_;
};

template <class R, class C, class E>
void install_callbacks(ResultState<R>& st, Callbacks<C, E>& cbs) {
    using Stored = typename ResultState<R>::Stored;
    if constexpr (!std::is_same_v<C, NoCallback>) {
        st.on_value_ = [cb = std::move(cbs.callback)](Stored& v) mutable {
            if constexpr (std::is_void_v<R>) {
                static_cast<void>(v);
                cb();
            } else {
                cb(static_cast<const R&>(v));
            }
        };
    }
    if constexpr (!std::is_same_v<E, NoCallback>) {
        st.on_error_ = [cb = std::move(cbs.error_callback)](const std::exception_ptr& e) mutable { cb(e); };
    }
}

/// One apply_async call: one task.
template <class R>
class ApplySource final : public TaskSource {
public:
    ApplySource(OwnedCall call, std::shared_ptr<ResultState<R>> st)
        : call_(std::move(call)), st_(std::move(st)) {}
    bool pull(std::size_t, TaskSlot& slot) override {
        if (pulled_) return false;
        pulled_ = true;
        slot.call = std::move(call_);
        return true;
    }
    bool exhausted() const override { return pulled_; }
    std::optional<std::size_t> remaining() const override { return pulled_ ? 0 : 1; }
    void complete(std::uint64_t, std::span<const std::byte> bytes, std::span<UniqueFd> fds) override {
        try {
            if constexpr (std::is_void_v<R>) {
                decode_task_result<void>(bytes, fds);
                st_->set_value({});
            } else {
                st_->set_value(decode_task_result<R>(bytes, fds));
            }
        } catch (...) {
            st_->set_error(std::current_exception());
        }
    }
    void fail(std::uint64_t, std::exception_ptr e) override { st_->set_error(std::move(e)); }
    void abandon(std::exception_ptr e) override { st_->set_error(std::move(e)); }

private:
    OwnedCall call_;
    bool pulled_ = false;
    std::shared_ptr<ResultState<R>> st_;
};

/// Outcome of one map item as a consumer sees it.
template <class R>
using Outcome = std::variant<std::conditional_t<std::is_void_v<R>, std::monostate, R>, std::exception_ptr>;

/// An input range held by imap: referenced when it was an lvalue, owned when an rvalue.
/// (std::views::all would do, but clang 14 cannot compile libstdc++ 12's views.)
template <class Range>
class HeldRange {
public:
    using R = std::remove_reference_t<Range>;
    explicit HeldRange(Range&& r) : r_(hold(std::forward<Range>(r))) {}
    R& get() noexcept {
        if constexpr (std::is_lvalue_reference_v<Range>) return *r_;
        else return r_;
    }

private:
    static auto hold(Range&& r) {
        if constexpr (std::is_lvalue_reference_v<Range>) return std::addressof(r);
        else return R(std::move(r));
    }
    std::conditional_t<std::is_lvalue_reference_v<Range>, R*, R> r_;
};

/// imap / imap_unordered: reads the input lazily through a bounded window.
template <bool Star, bool Ordered, class F, class In, class R>
class IMapSource final : public ChunkedSourceBase {
public:
    using View = HeldRange<In>;
    using V = std::remove_cvref_t<std::ranges::range_value_t<typename View::R>>;
    using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

    IMapSource(const F& f, View view, std::size_t chunksize, std::size_t window, Engine& engine)
        : f_(f), view_(std::move(view)), it_(std::ranges::begin(view_.get())), chunksize_(chunksize),
          window_(std::max<std::size_t>(window, 1)), engine_(engine.link()) {}

    bool pull(std::size_t hint, TaskSlot& slot) override {
        std::lock_guard lk(m_);
        if (cancelled_ || abandoned_) return false;
        Range r;
        if (!redo_.empty()) {
            r = redo_.front();
            redo_.pop_front();
            return encode_redo(r, slot);
        }
        if (input_done_) return false;
        const std::size_t in_window = read_ - consumed_;
        if (in_window >= window_) return false;
        std::size_t k = chunksize_ ? chunksize_ : hint;
        // Wait for a fair share of the window rather than sending slivers of it.
        if (window_ - in_window < std::min(k, std::max<std::size_t>(1, window_ / 8))) return false;
        k = std::min(k, window_ - in_window);
        // Items are kept until their chunk completes, so a crash can resend the survivors.
        std::vector<V> items;
        items.reserve(std::min<std::size_t>(k, 1 << 16));
        try {
            while (items.size() < k && it_ != std::ranges::end(view_.get())) {
                items.push_back(*it_);
                ++it_;
            }
        } catch (...) {
            input_error_ = std::current_exception();
            input_done_ = true;
        }
        if (it_ == std::ranges::end(view_.get())) input_done_ = true;
        if (input_done_) total_ = read_ + items.size();
        if (items.empty()) {
            notifier_.notify_all();
            return false;
        }
        r = {read_, items.size()};
        read_ += items.size();
        slot.call = encode(items);
        slot.elements = items.size();
        slot.tag = remember(r);
        kept_.emplace_back(r.start, std::move(items));
        return true;
    }
    bool exhausted() const override {
        return cancelled_ || abandoned_ || (input_done_ && redo_.empty());
    }

    void complete(std::uint64_t tag, std::span<const std::byte> bytes, std::span<UniqueFd> fds) override {
        std::unique_lock lk(m_);
        Range r = forget(tag);
        drop_kept(r);
        lk.unlock();
        std::vector<std::pair<std::size_t, Outcome<R>>> got;
        got.reserve(r.count);
        try {
            decode_chunk_result<R>(
                bytes, fds, r.count, static_cast<Stored*>(nullptr),
                [&](std::size_t i, auto&&... v) {
                    if constexpr (std::is_void_v<R>) got.emplace_back(r.start + i, Outcome<R>(std::in_place_index<0>));
                    else got.emplace_back(r.start + i, Outcome<R>(std::in_place_index<0>, std::move(v...)));
                },
                [&](std::size_t i, std::exception_ptr ex) {
                    got.emplace_back(r.start + i, Outcome<R>(std::in_place_index<1>, std::move(ex)));
                });
        } catch (...) {
            got.clear();
            for (std::size_t i = 0; i < r.count; ++i)
                got.emplace_back(r.start + i, Outcome<R>(std::in_place_index<1>, std::current_exception()));
        }
        lk.lock();
        for (auto& [i, o] : got) deliver(i, std::move(o));
        lk.unlock();
        notifier_.notify_all();
    }
    void fail(std::uint64_t tag, std::exception_ptr e) override {
        std::unique_lock lk(m_);
        Range r = forget(tag);
        drop_kept(r);
        for (std::size_t i = 0; i < r.count; ++i) deliver(r.start + i, Outcome<R>(std::in_place_index<1>, e));
        lk.unlock();
        notifier_.notify_all();
    }
    void lost(std::uint64_t tag, std::size_t element, std::exception_ptr e) override {
        std::unique_lock lk(m_);
        Range r = forget(tag);
        if (element >= r.count) element = 0;
        if (element > 0) redo_.push_back({r.start, element});
        if (element + 1 < r.count) redo_.push_back({r.start + element + 1, r.count - element - 1});
        deliver(r.start + element, Outcome<R>(std::in_place_index<1>, std::move(e)));
        lk.unlock();
        notifier_.notify_all();
        engine_.wake();
    }
    void abandon(std::exception_ptr e) override {
        {
            std::lock_guard lk(m_);
            abandoned_ = true;
            abandon_error_ = std::move(e);
        }
        notifier_.notify_all();
    }

    /// The next result (in input order when Ordered): nullopt at the end; throws the item's
    /// exception, TimeoutError, or the error that stopped the pool.
    std::optional<Stored> next(Deadline d) {
        std::optional<Outcome<R>> out;
        const bool ok = notifier_.wait([&] { return take(out); }, d);
        if (!ok) throw TimeoutError("mp::IMapIterator::next: timed out");
        // The window moved; ask for more input once a fair share of it is free again (not after
        // every item, which would make chunks of one).
        if (++since_wake_ >= std::max<std::size_t>(1, window_ / 8)) {
            since_wake_ = 0;
            engine_.wake();
        }
        if (!out) return std::nullopt;
        if (out->index() == 1) std::rethrow_exception(std::get<1>(*out));
        return std::move(std::get<0>(*out));
    }

private:
    // Under m_: true when `out` holds the next outcome or the stream has ended (out empty).
    bool take(std::optional<Outcome<R>>& out) {
        std::lock_guard lk(m_);
        if constexpr (Ordered) {
            if (!ready_.empty() && ready_.front()) {
                out = std::move(*ready_.front());
                ready_.pop_front();
                ++consumed_;
                return true;
            }
        } else {
            if (!done_.empty()) {
                out = std::move(done_.front());
                done_.pop_front();
                ++consumed_;
                return true;
            }
        }
        if (input_done_ && total_ && consumed_ >= *total_) {
            if (input_error_) {
                out = Outcome<R>(std::in_place_index<1>, std::exchange(input_error_, nullptr));
                return true;
            }
            return true;  // the end
        }
        if (abandoned_) {
            out = Outcome<R>(std::in_place_index<1>, abandon_error_);
            return true;
        }
        return false;
    }
    void deliver(std::size_t index, Outcome<R> o) {
        if constexpr (Ordered) {
            const std::size_t at = index - consumed_;
            if (ready_.size() <= at) ready_.resize(at + 1);
            ready_[at].emplace(std::move(o));
        } else {
            static_cast<void>(index);
            done_.push_back(std::move(o));
        }
    }
    void drop_kept(Range r) {
        for (auto it = kept_.begin(); it != kept_.end(); ++it) {
            if (it->first <= r.start && r.start < it->first + it->second.size()) {
                // The whole stored chunk goes once none of its items can be resent.
                bool needed = false;
                for (auto& red : redo_)
                    if (red.start >= it->first && red.start < it->first + it->second.size()) needed = true;
                for (auto& l : live_)
                    if (l.second.start >= it->first && l.second.start < it->first + it->second.size())
                        needed = true;
                if (!needed) kept_.erase(it);
                return;
            }
        }
    }
    bool encode_redo(Range r, TaskSlot& slot) {
        for (auto& [start, items] : kept_) {
            if (r.start >= start && r.start + r.count <= start + items.size()) {
                slot.call = encode(std::span<const V>(items.data() + (r.start - start), r.count));
                slot.elements = r.count;
                slot.tag = remember(r);
                return true;
            }
        }
        return false;
    }
    OwnedCall encode(std::span<const V> items) {
        Encoder e;
        begin_chunk<Star, F, V>(e, f_, items.size());
        for (const auto& v : items) encode_chunk_item<Star>(e, v);
        std::vector<UniqueFd> none;
        return finish_owned_call(e, none);
    }

    F f_;
    View view_;
    std::ranges::iterator_t<typename View::R> it_;
    std::size_t chunksize_;
    std::size_t window_;
    EngineLink engine_;
    std::size_t read_ = 0;
    std::size_t consumed_ = 0;
    std::size_t since_wake_ = 0;
    std::optional<std::size_t> total_;
    bool input_done_ = false;
    bool abandoned_ = false;
    std::exception_ptr input_error_;
    std::exception_ptr abandon_error_;
    std::deque<std::pair<std::size_t, std::vector<V>>> kept_;
    std::deque<std::optional<Outcome<R>>> ready_;  // Ordered: from consumed_ on
    std::deque<Outcome<R>> done_;                  // unordered
    Notifier notifier_;
};

}  // namespace detail

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
        if constexpr (std::is_void_v<R>) static_cast<void>(st_->value());
        else return st_->value();
    }
    /// get() moving the result out of a temporary AsyncResult.
    R get() && { return std::move(*this).get(forever); }
    /// get(timeout) moving the result out of a temporary AsyncResult.
    R get(Timeout timeout) && {
        wait_or_throw(timeout);
        if constexpr (std::is_void_v<R>) static_cast<void>(st_->value());
        else return std::move(st_->value());
    }
    /// Waits until the result is ready or the timeout passes; true when ready.
    bool wait(Timeout timeout = forever) const { return st_->wait(detail::Deadline(timeout)); }
    /// True once the result (or the exception) is there.
    [[nodiscard]] bool ready() const noexcept { return st_->ready(); }
    /// True when the task completed without an exception; mp::UsageError when not ready yet.
    [[nodiscard]] bool successful() const {
        if (!ready()) throw UsageError("mp::AsyncResult::successful: the result is not ready");
        return st_->successful();
    }

    explicit AsyncResult(std::shared_ptr<detail::ResultState<R>> st) noexcept : st_(std::move(st)) {}

private:
    void wait_or_throw(Timeout timeout) const {
        if (!st_->wait(detail::Deadline(timeout))) throw TimeoutError("mp::AsyncResult::get: timed out");
    }
    std::shared_ptr<detail::ResultState<R>> st_;
};

/// The results of imap / imap_unordered, read lazily (Python's IMapIterator). A single-pass
/// input range: `for (auto r : pool.imap(f, input))`. Move-only; destroying it stops reading
/// the input and drops the remaining results.
template <class R>
class IMapIterator {
public:
    using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

    IMapIterator(IMapIterator&&) noexcept = default;
    IMapIterator& operator=(IMapIterator&&) noexcept = default;
    ~IMapIterator() {
        if (cancel_) cancel_();
    }

    /// The next result (nullopt after the last); rethrows an item's exception; at most `timeout`
    /// (then mp::TimeoutError). mp::KeyboardInterrupt on Ctrl-C under mp::SigintGuard (the
    /// result is kept: the next call returns it).
    std::optional<Stored> next(Timeout timeout = forever) { return next_(detail::Deadline(timeout)); }

    /// Input iterator over the results (each ++ may block; it rethrows an item's exception).
    class iterator {
    public:
        using value_type = Stored;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(IMapIterator* owner) : owner_(owner) { advance(); }
        Stored& operator*() const { return *cur_; }
        Stored* operator->() const { return &*cur_; }
        iterator& operator++() {
            advance();
            return *this;
        }
        void operator++(int) { advance(); }
        friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return !it.cur_; }

    private:
        void advance() { cur_ = owner_->next(); }
        IMapIterator* owner_ = nullptr;
        mutable std::optional<Stored> cur_;
    };
    /// Starts the iteration (fetches the first result).
    iterator begin() { return iterator(this); }
    /// The end.
    std::default_sentinel_t end() const noexcept { return {}; }

    template <class Src>
    explicit IMapIterator(std::shared_ptr<Src> src)
        : next_([src](detail::Deadline d) { return src->next(d); }), cancel_([src] { src->cancel(); }) {}

private:
    std::function<std::optional<Stored>(detail::Deadline)> next_;
    std::function<void()> cancel_;
};

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
        using R = detail::task_result_t<F, Args...>;
        detail::OwnedCall call = detail::package_pool_task(f, args...);
        check_running("apply_async");
        auto st = std::make_shared<detail::ResultState<R>>();
        detail::install_callbacks(*st, cbs);
        engine_->submit(std::make_shared<detail::ApplySource<R>>(std::move(call), st));
        return AsyncResult<R>(std::move(st));
    }

    /// [f(x) for x in range], in input order; chunksize 0 adapts to the task duration.
    template <class F, std::ranges::input_range Range>
    auto map(const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_impl<false>(Callbacks<detail::NoCallback>{}, f, std::forward<Range>(range), chunksize)
            .get_and_cancel();
    }
    /// map, returning at once.
    template <class F, std::ranges::input_range Range>
    auto map_async(const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_impl<false>(Callbacks<detail::NoCallback>{}, f, std::forward<Range>(range), chunksize).result;
    }
    /// map_async with callbacks (the callback receives the whole result vector).
    template <class C, class E, class F, std::ranges::input_range Range>
    auto map_async(Callbacks<C, E> cbs, const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_impl<false>(std::move(cbs), f, std::forward<Range>(range), chunksize).result;
    }
    /// [f(a, b, ...) for (a, b, ...) in range of tuples], in input order.
    template <class F, std::ranges::input_range Range>
    auto starmap(const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_impl<true>(Callbacks<detail::NoCallback>{}, f, std::forward<Range>(range), chunksize)
            .get_and_cancel();
    }
    /// starmap, returning at once.
    template <class F, std::ranges::input_range Range>
    auto starmap_async(const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_impl<true>(Callbacks<detail::NoCallback>{}, f, std::forward<Range>(range), chunksize).result;
    }
    /// starmap_async with callbacks.
    template <class C, class E, class F, std::ranges::input_range Range>
    auto starmap_async(Callbacks<C, E> cbs, const F& f, Range&& range, std::size_t chunksize = 0) {
        return map_impl<true>(std::move(cbs), f, std::forward<Range>(range), chunksize).result;
    }

    /// Results of f over the input, in input order, read lazily: at most `buffersize` items
    /// (default 65536) are read ahead of the consumer, so the input may be endless. An lvalue
    /// range is referenced (it must outlive the iteration), an rvalue one is moved in.
    template <class F, std::ranges::input_range Range>
    auto imap(const F& f, Range&& range, std::size_t chunksize = 0, std::size_t buffersize = 0) {
        return imap_impl<false, true>(f, std::forward<Range>(range), chunksize, buffersize);
    }
    /// imap, in completion order.
    template <class F, std::ranges::input_range Range>
    auto imap_unordered(const F& f, Range&& range, std::size_t chunksize = 0, std::size_t buffersize = 0) {
        return imap_impl<false, false>(f, std::forward<Range>(range), chunksize, buffersize);
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

private:
    template <class Res>
    struct Launched {
        Res result;
        std::shared_ptr<detail::MapSourceBase> src;
        auto get_and_cancel() {
            struct Guard {
                detail::MapSourceBase* s;
                ~Guard() { s->cancel_remaining(); }
            } g{src.get()};
            return std::move(result).get();
        }
    };

    template <bool Star, class C, class E, class F, class Range>
    auto map_impl(Callbacks<C, E> cbs, const F& f, Range&& range, std::size_t chunksize) {
        using V = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        static_assert(detail::check_chunk<Star, F, V>(),
                      "mp::Pool: the function or the items of this map cannot be shipped to a "
                      "worker process (the reason is in the other diagnostics of this error)");
        using R = detail::chunk_result_t<Star, F, V>;
        static_assert(std::is_void_v<R> || std::is_default_constructible_v<R>,
                      "mp::Pool::map: the result type must be default constructible");
        using Res = std::conditional_t<std::is_void_v<R>, void, std::vector<R>>;
        check_running("map");
        auto st = std::make_shared<detail::ResultState<Res>>();
        detail::install_callbacks(*st, cbs);
        using Src = detail::OrderedMapSource<std::decay_t<F>, V, R, Star, false>;
        auto src = std::make_shared<Src>(f, detail::materialize<V>(std::forward<Range>(range)), chunksize,
                                         *engine_, false);
        // The source owns the hook, so a plain pointer back to it cannot dangle.
        src->when_done([st, s = src.get()] {
            try {
                if constexpr (std::is_void_v<R>) {
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
        return Launched<AsyncResult<Res>>{AsyncResult<Res>(std::move(st)), std::move(src)};
    }

    template <bool Star, bool Ordered, class F, class Range>
    auto imap_impl(const F& f, Range&& range, std::size_t chunksize, std::size_t buffersize) {
        using V = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        static_assert(detail::check_chunk<Star, F, V>(),
                      "mp::Pool: the function or the items of this map cannot be shipped to a "
                      "worker process (the reason is in the other diagnostics of this error)");
        using R = detail::chunk_result_t<Star, F, V>;
        check_running("imap");
        auto src = std::make_shared<detail::IMapSource<Star, Ordered, std::decay_t<F>, Range, R>>(
            f, detail::HeldRange<Range>(std::forward<Range>(range)), chunksize,
            buffersize ? buffersize : std::size_t{1} << 16, *engine_);
        engine_->submit(src);
        return IMapIterator<R>(std::move(src));
    }

    void check_running(const char* what) const;

    std::unique_ptr<detail::Engine> engine_;
    std::atomic<int> state_{0};  // 0 running, 1 closed, 2 terminated
};

}  // namespace mp
