// The ordered map source shared by Pool::map/map_async/starmap (pool.hpp),
// ProcessPoolExecutor::map (futures.hpp) and parallel_map (parallel.hpp): a materialized input,
// results kept per item in input order, read either one by one as they become available (next),
// all at once (wait_all + take_results), or handed over when the last item settles (when_done).
//
// Items are sent in chunks (package_chunk's format, detail/task.hpp) whose size is fixed or
// follows the engine's hint. When the item type is a std::vector of a trivially copyable type,
// each item is one pool task instead (package_pool_task), so that an item of 1 MiB or more
// travels through shared memory (a memfd) and a function taking std::span<const T> reads it in
// place; the engine still batches those tasks into one frame per worker. (Pool keeps chunks for
// every item type, as it always did: PerItem = false.) With Star, each item is a tuple of the
// function's arguments (starmap).
//
// Item states: pending, ok, error (the item's exception), cancelled (never sent: the consumer
// went away, shutdown(cancel_futures = true), or parallel_map stopping at its first error), and
// abandoned (the engine was terminated or broke). Every item reaches one of them, so a waiting
// consumer always wakes up.
//
// Thread safety: engine callbacks run on the engine thread; next, wait_all, take_results,
// cancel and done_count may be called from one consumer thread meanwhile. The when_done hook
// runs once, on the thread that settles the last item.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "multiproc/detail/engine.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/detail/task.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/timeout.hpp"

namespace mp {
class Progress;
}  // namespace mp

namespace mp::detail {

/// What every chunked source shares: items numbered from 0, chunks of consecutive items, the
/// splitting of a chunk whose worker died (only the item it was running fails), and the
/// cancel switch its consumer flips when it goes away (then the input is never touched again).
class ChunkedSourceBase : public TaskSource,
                          public std::enable_shared_from_this<ChunkedSourceBase> {
public:
    /// The consumer is gone: never read the input again, drop results.
    void cancel() {
        std::lock_guard lk(m_);
        cancelled_.store(true, std::memory_order_relaxed);
    }

protected:
    struct Range {
        std::size_t start, count;
    };
    // Chunks of items already read from the input that must be sent again (split on a death).
    std::deque<Range> redo_;
    std::vector<std::pair<std::uint64_t, Range>> live_;  // tag -> range, small
    std::uint64_t next_tag_ = 1;
    std::atomic<bool> cancelled_{false};
    // mutable: exhausted() (const, on the engine thread) reads what a consumer's cancel changes.
    mutable std::mutex m_;

    // Out of line (src/map_source.cpp): a source does not instantiate live_'s growth.
    /// Asks `engine` to stop every task of this source in flight by killing the workers running
    /// them (EngineLink::every_task); the source is then abandoned with mp::CancelledError.
    void kill_in_flight(const EngineLink& engine);
    /// A new tag for a chunk of range r in flight.
    std::uint64_t remember(Range r);
    /// The range of a finished chunk, no longer in flight ({0, 0} for an unknown tag).
    Range forget(std::uint64_t tag);
};

/// True when items of type V go one per task (so that large ones can use shared memory).
template <class V>
inline constexpr bool per_item_v = is_bulk_vector_v<V>;

/// The result type of mapping F over items of type V.
template <class F, class V>
using map_result_t =
    std::conditional_t<per_item_v<V>, task_result_t<F, V>, chunk_result_t<false, F, V>>;

/// Compile-time check that F can be mapped over V (callable.hpp's reasons otherwise).
template <class F, class V>
constexpr bool check_map() {
    if constexpr (per_item_v<V>) {
        if constexpr (!call_traits<F, V>::task_ok) static_cast<void>(&package_task<F, V>);
        return call_traits<F, V>::task_ok;
    } else {
        return check_chunk<false, F, V>();
    }
}

/// The part of an ordered map source a front end can drive without knowing its types.
class MapSourceBase : public ChunkedSourceBase {
public:
    /// Items not sent yet are cancelled (CancelledError when read); in-flight ones complete.
    virtual void cancel_remaining() = 0;
};

/// The half of an ordered map source that does not depend on its types (src/map_source.cpp):
/// the state of each item, the errors, the done count and hook, cancellation, a worker's death,
/// abandon, and the waits. OrderedMapSource adds the function, the items and the results.
class OrderedMapCore : public MapSourceBase {
public:
    ~OrderedMapCore() override;  // out of line: a map does not compile the members' cleanup
    bool exhausted() const override;
    std::optional<std::size_t> remaining() const override;
    void fail(std::uint64_t tag, std::exception_ptr e) override;
    void lost(std::uint64_t tag, std::size_t element, std::exception_ptr e) override;
    void abandon(std::exception_ptr e) override;
    void cancel_remaining() override;
    /// Called when an IMapIterator over this source goes away: nothing more will be read.
    void cancel() { cancel_remaining(); }
    /// IMapIterator::cancel(mp::force): cancel(), and the items in flight are stopped by
    /// killing their workers.
    void kill();

    /// Runs `hook` once, at the first pull, before anything is sent (Pool::map_async marks its
    /// result running there); when it returns false (the result was cancelled first), every
    /// item is cancelled and nothing is sent. Call it before submitting.
    void when_started(std::function<bool()> hook);
    /// Runs `hook` once, on the thread that settles the last item, or now when there are no
    /// items (Pool::map_async hands the results over there). Call it before submitting.
    void when_done(std::function<void()> hook);
    /// Items settled so far (any state but pending).
    [[nodiscard]] std::size_t done_count() const noexcept {
        return done_.load(std::memory_order_acquire);
    }
    /// The number of items.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// Blocks until every item is settled (true) or the deadline passes (false).
    bool wait_all(Deadline d);

protected:
    /// stop_on_error: the first failing item cancels every item not sent yet (parallel_map);
    /// deadline: the limit of every next() (Executor::map counts its timeout from the call).
    OrderedMapCore(std::size_t size, std::size_t chunksize, bool per_item, Engine& engine,
                   bool stop_on_error, Deadline deadline);

    using Errors = std::vector<std::pair<std::size_t, std::exception_ptr>>;
    /// Item i failed with e (out of line: a map does not instantiate the vector's growth).
    static void add_error(Errors& errs, std::size_t i, std::exception_ptr e);
    /// Every item of r failed with e (replaces what errs held).
    static void fail_all(Errors& errs, Range r, const std::exception_ptr& e);
    /// Under m_: the next range of items to send (a resend first), false when there is none.
    bool next_range(std::size_t hint, Range& r);
    /// The range of a finished task (takes m_).
    Range take_range(std::uint64_t tag);
    /// At the top of pull: false when the when_started hook says the map was cancelled.
    bool begin_pull();
    /// Marks the items of r settled: those in errs failed, the others succeeded.
    void settle(Range r, Errors& errs);
    /// Under m_, after wait_all: throws the lowest failing item's error, or CancelledError or the
    /// abandon error when an item was cancelled or abandoned.
    void throw_if_failed_locked() const;
    /// Waits for the next item in input order: its index once it succeeded, nullopt after the
    /// last; throws its error, CancelledError, or TimeoutError (IMapIterator's protocol).
    std::optional<std::size_t> next_index(Deadline d);

private:
    enum : std::uint8_t { kPending, kOk, kError, kCancelled, kAbandoned };

    std::size_t cancel_unsent_locked();
    void add_done(std::size_t n);

    std::size_t size_;
    std::size_t chunksize_;
    bool per_item_;
    EngineLink engine_;
    bool stop_on_error_;
    Deadline deadline_;
    std::vector<std::uint8_t> state_;
    std::vector<std::exception_ptr> errors_;  // by item, sized at the first error
    std::exception_ptr abandon_error_;
    std::size_t next_ = 0;
    std::size_t consumed_ = 0;
    std::atomic<std::size_t> done_{0};
    std::function<void()> on_done_;
    std::function<bool()> on_start_;
    Notifier notifier_;  // every settled item (next_index)
    Notifier all_done_;  // the last one only (wait_all): a map's waiter sleeps until then
};

/// Waits until every item of src is settled, reporting progress meanwhile (a bar labelled
/// `label` unless progress is disabled).
void wait_with_progress(OrderedMapCore& src, const Progress& progress, const char* label);

template <class F, class V, class R, bool Star = false, bool PerItem = per_item_v<V>>
class OrderedMapSource final : public OrderedMapCore {
public:
    using result_type = R;
    using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
    static constexpr bool per_item = PerItem;
    static_assert(!(Star && PerItem), "starmap items go in chunks");

    /// See OrderedMapCore's constructor.
    OrderedMapSource(const F& f, std::vector<V> items, std::size_t chunksize, Engine& engine,
                     bool stop_on_error, Deadline deadline = Deadline::never())
        : OrderedMapCore(items.size(), chunksize, per_item, engine, stop_on_error, deadline), f_(f),
          items_(std::move(items)) {
        results_.resize(items_.size());
    }

    bool pull(std::size_t hint, TaskSlot& slot) override {
        if (!begin_pull()) return false;
        std::lock_guard lk(m_);
        Range r;
        if (!next_range(hint, r)) return false;
        if constexpr (per_item) {
            slot.call = package_pool_task(f_, items_[r.start]);
        } else {
            Encoder e;
            begin_chunk<Star, F, V>(e, f_, r.count);
            encode_chunk_items<Star>(e, std::span<const V>(items_.data() + r.start, r.count));
            std::vector<UniqueFd> none;
            slot.call = finish_owned_call(e, none);
        }
        slot.elements = r.count;
        slot.tag = remember(r);
        return true;
    }

    void complete(std::uint64_t tag, std::span<const std::byte> bytes,
                  std::span<UniqueFd> fds) override {
        const Range r = take_range(tag);
        Errors errs;
        if constexpr (per_item) {
            try {
                if constexpr (std::is_void_v<R>) decode_task_result<void>(bytes, fds);
                else results_[r.start] = decode_task_result<R>(bytes, fds);
            } catch (...) {
                add_error(errs, r.start, std::current_exception());
            }
        } else {
            Stored* dest = nullptr;
            if constexpr (raw_result_v<R>) dest = results_.data() + r.start;
            try {
                decode_chunk_result<R>(
                    bytes, fds, r.count, dest,
                    [&](std::size_t i, auto&&... v) {
                    if constexpr (!std::is_void_v<R>) results_[r.start + i] = std::move(v...);
                    else static_cast<void>(i);
                    },
                    [&](std::size_t i, std::exception_ptr ex) {
                    add_error(errs, r.start + i, std::move(ex));
                });
            } catch (...) {
                fail_all(errs, r, std::current_exception());
            }
        }
        settle(r, errs);
    }

    /// After wait_all: every result in order, or the error of the lowest failing item.
    std::vector<Stored> take_results() {
        std::lock_guard lk(m_);
        throw_if_failed_locked();
        return std::move(results_);
    }

    /// The next result in input order (IMapIterator's protocol): nullopt after the last;
    /// rethrows the item's exception; mp::CancelledError for a cancelled item; mp::TimeoutError
    /// once the earlier of `d` and the source's deadline passes.
    std::optional<Stored> next(Deadline d) {
        // The item settled before next_index saw it under the lock, and only this consumer
        // reads it afterwards.
        const std::optional<std::size_t> i = next_index(d);
        if (!i) return std::nullopt;
        return std::move(results_[*i]);
    }

private:
    F f_;
    std::vector<V> items_;
    std::vector<Stored> results_;
};

/// Copies an input range into a vector of its values (the map sources own their input).
template <class V, class Range>
std::vector<V> materialize(Range&& range) {
    if constexpr (std::is_same_v<std::remove_cvref_t<Range>, std::vector<V>>) {
        return std::vector<V>(range);  // a copy: the caller's vector stays as it was
    } else {
        std::vector<V> items;
        if constexpr (std::ranges::sized_range<Range>) items.reserve(std::ranges::size(range));
        for (auto&& v : range) items.push_back(static_cast<V>(v));
        return items;
    }
}

}  // namespace mp::detail
