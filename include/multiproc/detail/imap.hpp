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
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/detail/task.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/timeout.hpp"

namespace mp {
namespace detail {

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
          window_(window ? window : 1), engine_(engine.link()) {}

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
        if (window_ - in_window < (k < share() ? k : share())) return false;
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
        if (++since_wake_ >= share()) {
            since_wake_ = 0;
            engine_.wake();
        }
        if (!out) return std::nullopt;
        if (out->index() == 1) std::rethrow_exception(std::get<1>(*out));
        return std::move(std::get<0>(*out));
    }

private:
    // A fair share of the window: an eighth of it, at least one item.
    std::size_t share() const noexcept { return window_ / 8 ? window_ / 8 : 1; }
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

}  // namespace mp
