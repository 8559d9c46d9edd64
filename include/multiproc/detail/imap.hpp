// The machinery of Pool::imap / imap_unordered and of the lazy results of
// ProcessPoolExecutor::map: IMapSource reads its input lazily through a bounded window and
// keeps each chunk's items until the chunk completes (so a crash can resend the survivors);
// mp::IMapIterator is what the user iterates.
#pragma once

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
#include "multiproc/detail/map_source.hpp"
#include "multiproc/detail/pull_iterator.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/detail/task.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/progress.hpp"
#include "multiproc/timeout.hpp"

namespace mp {
namespace detail {

/// Outcome of one map item as a consumer sees it.
template <class R>
using Outcome =
    std::variant<std::conditional_t<std::is_void_v<R>, std::monostate, R>, std::exception_ptr>;

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

/// What an mp::IMapIterator reads: the results of one lazy map, handed over a batch at a time
/// (the iterator serves them from its own buffer, without a lock or a call per item).
template <class R>
class ResultStream {
public:
    virtual ~ResultStream() = default;
    /// Moves the next results into `into` (empty; every result handed over before was
    /// consumed): false at the end. Throws TimeoutError once d passes (nothing lost).
    virtual bool refill(std::vector<Outcome<R>>& into, Deadline d) = 0;
    /// The consumer is gone: read nothing more.
    virtual void cancel() = 0;
    /// cancel(), and the tasks in flight are stopped by killing their workers.
    virtual void kill() = 0;
};

/// A ResultStream over a source that hands out one result at a time (the executor's map):
/// an item's exception becomes the outcome that rethrows it at the same step.
template <class Src, class R>
class StreamOf final : public ResultStream<R> {
public:
    explicit StreamOf(std::shared_ptr<Src> src) : src_(std::move(src)) {}
    bool refill(std::vector<Outcome<R>>& into, Deadline d) override {
        try {
            auto v = src_->next(d);
            if (!v) return false;
            into.emplace_back(std::in_place_index<0>, std::move(*v));
        } catch (...) {
            into.emplace_back(std::in_place_index<1>, std::current_exception());
        }
        return true;
    }
    void cancel() override { src_->cancel(); }
    void kill() override { src_->kill(); }

private:
    std::shared_ptr<Src> src_;
};

/// imap / imap_unordered: reads the input lazily through a bounded window.
template <bool Star, bool Ordered, class F, class In, class R>
class IMapSource final : public ChunkedSourceBase, public ResultStream<R> {
public:
    using View = HeldRange<In>;
    using V = std::remove_cvref_t<std::ranges::range_value_t<typename View::R>>;
    using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

    IMapSource(const F& f, View view, std::size_t chunksize, std::size_t window, Engine& engine)
        : f_(f), view_(std::move(view)), it_(std::ranges::begin(view_.get())),
          chunksize_(chunksize), window_(window ? window : 1),
          share_(window_ / 8 ? window_ / 8 : 1), engine_(engine.link()) {}

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
        if (window_ - in_window < (k < share_ ? k : share_)) return false;
        if (k > window_ - in_window) k = window_ - in_window;
        // Items are kept until their chunk completes, so a crash can resend the survivors.
        std::vector<V> items;
        items.reserve(k < (std::size_t{1} << 16) ? k : std::size_t{1} << 16);
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

    void complete(std::uint64_t tag, std::span<const std::byte> bytes,
                  std::span<UniqueFd> fds) override {
        std::unique_lock lk(m_);
        Range r = forget(tag);
        drop_kept(r);
        lk.unlock();
        // Decoded without the lock, then handed over under one lock for the whole chunk.
        std::vector<Delivery> got;
        got.reserve(r.count);
        try {
            decode_chunk_result<R>(
                bytes, fds, r.count, static_cast<Stored*>(nullptr),
                [&](std::size_t i, auto&&... v) {
                if constexpr (std::is_void_v<R>)
                    got.push_back(delivery(r.start + i, std::in_place_index<0>));
                else got.push_back(delivery(r.start + i, std::in_place_index<0>, std::move(v...)));
                },
                [&](std::size_t i, std::exception_ptr ex) {
                got.push_back(delivery(r.start + i, std::in_place_index<1>, std::move(ex)));
            });
        } catch (...) {
            got.clear();
            for (std::size_t i = 0; i < r.count; ++i)
                got.push_back(delivery(r.start + i, std::in_place_index<1>,
                                       std::current_exception()));
        }
        lk.lock();
        if constexpr (Ordered) {
            for (auto& [i, o] : got) deliver(i, std::move(o));
        } else if (done_.empty()) {
            done_.swap(got);
        } else {
            // What the consumer took goes first (a move of what waits, at most the window).
            done_.erase(done_.begin(), done_.begin() + static_cast<std::ptrdiff_t>(done_at_));
            done_at_ = 0;
            done_.insert(done_.end(), std::make_move_iterator(got.begin()),
                         std::make_move_iterator(got.end()));
        }
        lk.unlock();
        notifier_.notify_all();
    }
    void fail(std::uint64_t tag, std::exception_ptr e) override {
        std::unique_lock lk(m_);
        Range r = forget(tag);
        drop_kept(r);
        for (std::size_t i = 0; i < r.count; ++i)
            deliver(r.start + i, Outcome<R>(std::in_place_index<1>, e));
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

    /// The next results (in input order when Ordered), at most a fair share of the window:
    /// false at the end; the error that ends the stream (the input's, the pool's) comes as an
    /// outcome. Throws TimeoutError once d passes.
    bool refill(std::vector<Outcome<R>>& into, Deadline d) override {
        bool wake = false;
        {
            std::lock_guard lk(m_);
            // What was handed over before is consumed: the window moves. Ask for more input
            // once a fair share of it is free again (not after every item: chunks of one).
            since_wake_ += taken_ - consumed_;
            consumed_ = taken_;
            wake = since_wake_ >= share_;
            if (wake) since_wake_ = 0;
        }
        if (wake) engine_.wake();
        bool more = true;
        if (!notifier_.wait([&] { return take(into, more); }, d))
            throw TimeoutError("mp::IMapIterator::next: timed out");
        return more;
    }
    void cancel() override { ChunkedSourceBase::cancel(); }
    void kill() override {
        ChunkedSourceBase::cancel();
        kill_in_flight(engine_);
    }

private:
    // An unordered source hands its outcomes over in completion order; an ordered one keeps
    // each outcome's input position until it is placed.
    using Delivery = std::conditional_t<Ordered, std::pair<std::size_t, Outcome<R>>, Outcome<R>>;
    template <std::size_t I, class... A>
    static Delivery delivery(std::size_t index, std::in_place_index_t<I> which, A&&... a) {
        if constexpr (Ordered) {
            return Delivery(index, Outcome<R>(which, std::forward<A>(a)...));
        } else {
            static_cast<void>(index);
            return Delivery(which, std::forward<A>(a)...);
        }
    }
    // Under m_: true when `into` holds the next outcomes (or the error that ends the stream),
    // or the stream has ended (more = false).
    bool take(std::vector<Outcome<R>>& into, bool& more) {
        std::lock_guard lk(m_);
        if constexpr (Ordered) {
            while (into.size() < share_ && !ready_.empty() && ready_.front()) {
                into.push_back(std::move(*ready_.front()));
                ready_.pop_front();
            }
        } else if (done_at_ == 0 && done_.size() <= share_) {
            into.swap(done_);  // done_ keeps into's room for the next results
        } else {
            const std::size_t left = done_.size() - done_at_;
            const std::size_t n = left < share_ ? left : share_;
            const auto from = done_.begin() + static_cast<std::ptrdiff_t>(done_at_);
            into.insert(into.end(), std::make_move_iterator(from),
                        std::make_move_iterator(from + static_cast<std::ptrdiff_t>(n)));
            done_at_ += n;
            if (done_at_ == done_.size()) {
                done_.clear();
                done_at_ = 0;
            }
        }
        if (!into.empty()) {
            taken_ += into.size();
            return true;
        }
        if (input_done_ && total_ && taken_ >= *total_) {
            if (input_error_)
                into.emplace_back(std::in_place_index<1>, std::exchange(input_error_, nullptr));
            else more = false;
            return true;
        }
        if (abandoned_) {
            into.emplace_back(std::in_place_index<1>, abandon_error_);
            return true;
        }
        return false;
    }
    void deliver(std::size_t index, Outcome<R> o) {
        if constexpr (Ordered) {
            const std::size_t at = index - taken_;
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
                    if (red.start >= it->first && red.start < it->first + it->second.size())
                        needed = true;
                for (auto& l : live_)
                    if (l.second.start >= it->first &&
                        l.second.start < it->first + it->second.size())
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
        encode_chunk_items<Star>(e, items);
        std::vector<UniqueFd> none;
        return finish_owned_call(e, none);
    }

    F f_;
    View view_;
    std::ranges::iterator_t<typename View::R> it_;
    std::size_t chunksize_;
    std::size_t window_;
    std::size_t share_;  // a fair share of the window: an eighth of it, at least one item
    EngineLink engine_;
    std::size_t read_ = 0;
    std::size_t taken_ = 0;       // results handed to the consumer
    std::size_t consumed_ = 0;    // results the consumer is done with: the window's end
    std::size_t since_wake_ = 0;  // consumed since the supervisor was last asked for input
    std::optional<std::size_t> total_;
    bool input_done_ = false;
    bool abandoned_ = false;
    std::exception_ptr input_error_;
    std::exception_ptr abandon_error_;
    std::deque<std::pair<std::size_t, std::vector<V>>> kept_;
    std::deque<std::optional<Outcome<R>>> ready_;  // Ordered: from taken_ on
    std::vector<Outcome<R>> done_;                 // unordered, in completion order, from done_at_
    std::size_t done_at_ = 0;
    Notifier notifier_;
};

}  // namespace detail

/// The results of imap / imap_unordered and ProcessPoolExecutor::map, read lazily (Python's
/// IMapIterator). A single-pass input range: `for (auto r : pool.imap(f, input))`. Move-only;
/// destroying it stops reading the input and drops the remaining results (cancel()).
template <class R>
class IMapIterator {
public:
    using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

    IMapIterator(IMapIterator&&) noexcept = default;
    IMapIterator& operator=(IMapIterator&&) noexcept = default;
    ~IMapIterator() {
        if (src_) src_->cancel();
    }

    /// The next result (nullopt after the last); rethrows an item's exception; at most `timeout`
    /// (then mp::TimeoutError). mp::KeyboardInterrupt on Ctrl-C under mp::SigintGuard (the
    /// result is kept: the next call returns it).
    std::optional<Stored> next(Timeout timeout = forever) {
        Stored* r = step(timeout);
        if (!r) return std::nullopt;
        return std::move(*r);
    }

    /// Stops the map (as closing Python's generator): nothing more of it is sent to a worker;
    /// the items running finish, their results dropped. The next step throws
    /// mp::CancelledError. Call it (and cancel(mp::force)) from the thread that iterates.
    void cancel() {
        src_->cancel();
        cancelled_ = true;
    }
    /// cancel(), and the items running are stopped too (as ray.cancel(force=True)): each
    /// worker running one is killed (SIGTERM, then SIGKILL after a short grace) and replaced;
    /// the other tasks it held (other maps', other calls') run again on other workers.
    void cancel(force_t) {
        src_->kill();
        cancelled_ = true;
    }

    /// Input iterator over the results (each ++ may block; it rethrows an item's exception).
    using iterator = detail::PullIterator<IMapIterator, Stored>;
    /// Starts the iteration (fetches the first result).
    iterator begin() { return iterator(this); }
    /// The end.
    std::default_sentinel_t end() const noexcept { return {}; }

    template <class Src>
    explicit IMapIterator(std::shared_ptr<Src> src) : src_(stream(std::move(src))) {}
    /// An iteration that reports its progress as it steps.
    template <class Src>
    IMapIterator(std::shared_ptr<Src> src, detail::StepProgress progress)
        : src_(stream(std::move(src))), progress_(std::move(progress)) {}

private:
    friend iterator;
    Stored* pull() { return step(forever); }  // in this iterator's buffer until the next step
    template <class Src>
    static std::shared_ptr<detail::ResultStream<R>> stream(std::shared_ptr<Src> src) {
        if constexpr (std::is_base_of_v<detail::ResultStream<R>, Src>) return src;
        else return std::make_shared<detail::StreamOf<Src, R>>(std::move(src));
    }
    // The next result in the buffer (nullptr after the last); rethrows an item's exception.
    Stored* step(Timeout timeout) {
        if (cancelled_) throw CancelledError("mp::IMapIterator: the map was cancelled");
        if (at_ == buf_.size()) {
            buf_.clear();
            at_ = 0;
            if (!src_->refill(buf_, detail::Deadline(timeout))) {
                progress_.end();
                return nullptr;
            }
        }
        auto& o = buf_[at_++];
        progress_.step();
        if (o.index() == 1) std::rethrow_exception(std::get<1>(o));
        return &std::get<0>(o);
    }

    std::shared_ptr<detail::ResultStream<R>> src_;
    std::vector<detail::Outcome<R>> buf_;  // results handed over, served from at_
    std::size_t at_ = 0;
    detail::StepProgress progress_;
    bool cancelled_ = false;
};

}  // namespace mp
