// The type-independent half of the ordered map sources (Pool::map, ProcessPoolExecutor::map,
// parallel_map): item states, errors, deaths, cancellation and the waits, compiled once here
// rather than in every program for every function and item type; also ChunkedSourceBase's chunk
// bookkeeping (remember, forget), shared with the imap sources.
#include "multiproc/detail/map_source.hpp"

#include <cstring>
#include <string>
#include <utility>

#include "multiproc/progress.hpp"

namespace mp::detail {

namespace {

Deadline earlier(Deadline a, Deadline b) {
    if (a.is_forever()) return b;
    if (b.is_forever()) return a;
    return a.remaining() < b.remaining() ? a : b;
}

}  // namespace

void ChunkedSourceBase::kill_in_flight(const EngineLink& engine) {
    engine.kill_task(shared_from_this(), EngineLink::every_task, nullptr);
}

std::uint64_t ChunkedSourceBase::remember(Range r) {
    const std::uint64_t tag = next_tag_++;
    live_.emplace_back(tag, r);
    return tag;
}

ChunkedSourceBase::Range ChunkedSourceBase::forget(std::uint64_t tag) {
    for (auto it = live_.begin(); it != live_.end(); ++it) {
        if (it->first == tag) {
            Range r = it->second;
            *it = live_.back();
            live_.pop_back();
            return r;
        }
    }
    return {0, 0};
}

void OrderedMapCore::add_error(Errors& errs, std::size_t i, std::exception_ptr e) {
    errs.emplace_back(i, std::move(e));
}

void OrderedMapCore::fail_all(Errors& errs, Range r, const std::exception_ptr& e) {
    errs.clear();
    for (std::size_t i = 0; i < r.count; ++i) errs.emplace_back(r.start + i, e);
}

OrderedMapCore::OrderedMapCore(std::size_t size, std::size_t chunksize, bool per_item,
                               Engine& engine, bool stop_on_error, Deadline deadline)
    : size_(size), chunksize_(chunksize), per_item_(per_item), engine_(engine.link()),
      stop_on_error_(stop_on_error), deadline_(deadline), state_(size, kPending) {}

OrderedMapCore::~OrderedMapCore() = default;

bool OrderedMapCore::exhausted() const {
    // Under m_: a consumer going away clears redo_ (cancel_unsent_locked) meanwhile.
    std::lock_guard lk(m_);
    return cancelled_ || (next_ >= size_ && redo_.empty());
}

std::optional<std::size_t> OrderedMapCore::remaining() const { return size_ - next_; }

bool OrderedMapCore::next_range(std::size_t hint, Range& r) {
    if (cancelled_) return false;
    if (!redo_.empty()) {
        r = redo_.front();
        redo_.pop_front();
        return true;
    }
    if (next_ >= size_) return false;
    std::size_t k = per_item_ ? 1 : (chunksize_ ? chunksize_ : hint);
    if (k < 1) k = 1;
    if (k > size_ - next_) k = size_ - next_;
    r = {next_, k};
    next_ += k;
    return true;
}

ChunkedSourceBase::Range OrderedMapCore::take_range(std::uint64_t tag) {
    std::lock_guard lk(m_);
    return forget(tag);
}

void OrderedMapCore::fail(std::uint64_t tag, std::exception_ptr e) {
    const Range r = take_range(tag);
    Errors errs;
    fail_all(errs, r, e);
    settle(r, errs);
}

void OrderedMapCore::lost(std::uint64_t tag, std::size_t element, std::exception_ptr e) {
    Range r;
    {
        std::lock_guard lk(m_);
        r = forget(tag);
        if (element >= r.count) element = 0;
        // Only the item that was running fails; the others of its chunk run again.
        if (element > 0) redo_.push_back({r.start, element});
        if (element + 1 < r.count) redo_.push_back({r.start + element + 1, r.count - element - 1});
    }
    Errors errs{{r.start + element, std::move(e)}};
    settle({r.start + element, 1}, errs);
    if (r.count > 1) engine_.wake();
}

void OrderedMapCore::abandon(std::exception_ptr e) {
    std::size_t n = 0;
    {
        std::lock_guard lk(m_);
        cancelled_.store(true, std::memory_order_relaxed);
        abandon_error_ = std::move(e);
        for (auto& s : state_)
            if (s == kPending) {
                s = kAbandoned;
                ++n;
            }
    }
    add_done(n);
}

void OrderedMapCore::cancel_remaining() {
    std::size_t n = 0;
    {
        std::lock_guard lk(m_);
        n = cancel_unsent_locked();
    }
    add_done(n);
}

void OrderedMapCore::kill() {
    cancel_remaining();
    kill_in_flight(engine_);
}

// Pulls never run concurrently (the engine's loop lock), and the hook was set before submission.
bool OrderedMapCore::begin_pull() {
    if (!on_start_) return true;
    const auto hook = std::exchange(on_start_, nullptr);
    if (hook()) return true;
    cancel_remaining();  // cancelled before its first chunk was sent
    return false;
}

void OrderedMapCore::when_started(std::function<bool()> hook) { on_start_ = std::move(hook); }

void OrderedMapCore::when_done(std::function<void()> hook) {
    if (size_ == 0) hook();
    else on_done_ = std::move(hook);
}

bool OrderedMapCore::wait_all(Deadline d) {
    return all_done_.wait([this] { return done_count() == size_; }, d);
}

void OrderedMapCore::throw_if_failed_locked() const {
    // The lowest failing item's error, as Python's map raises the first one in input order.
    for (const auto& e : errors_)
        if (e) std::rethrow_exception(e);
    // Only a cancel or an abandon leaves items cancelled or abandoned; skip the scan else.
    if (cancelled_.load(std::memory_order_relaxed))
        for (auto s : state_) {
            if (s == kAbandoned) std::rethrow_exception(abandon_error_);
            if (s == kCancelled) throw CancelledError("multiproc: the map was cancelled");
        }
}

std::optional<std::size_t> OrderedMapCore::next_index(Deadline d) {
    if (consumed_ >= size_) return std::nullopt;
    const std::size_t i = consumed_;
    const Deadline limit = earlier(d, deadline_);
    const bool ok = notifier_.wait(
        [&] {
        std::lock_guard lk(m_);
        return state_[i] != kPending;
        },
        limit);
    if (!ok) throw TimeoutError("mp::ProcessPoolExecutor::map: timed out waiting for a result");
    ++consumed_;
    std::lock_guard lk(m_);
    switch (state_[i]) {
        case kOk: return i;
        case kError: std::rethrow_exception(std::exchange(errors_[i], nullptr));
        case kCancelled:
            throw CancelledError("multiproc: this map item was cancelled before it ran");
        default: std::rethrow_exception(abandon_error_);
    }
}

// Under m_: every item not sent yet (and every item waiting to be sent again) is cancelled.
std::size_t OrderedMapCore::cancel_unsent_locked() {
    cancelled_.store(true, std::memory_order_relaxed);
    std::size_t n = 0;
    auto mark = [&](std::size_t i) {
        if (state_[i] == kPending) {
            state_[i] = kCancelled;
            ++n;
        }
    };
    for (std::size_t i = next_; i < size_; ++i) mark(i);
    for (auto& r : redo_)
        for (std::size_t i = r.start; i < r.start + r.count; ++i) mark(i);
    redo_.clear();
    return n;
}

void OrderedMapCore::settle(Range r, Errors& errs) {
    std::size_t n = 0;
    {
        std::lock_guard lk(m_);
        for (auto& [i, e] : errs) {
            if (state_[i] != kPending) continue;
            state_[i] = kError;
            if (errors_.empty()) errors_.resize(size_);
            errors_[i] = std::move(e);
            ++n;
        }
        if (errs.empty() && !cancelled_.load(std::memory_order_relaxed)) {
            // Every item of a range in flight is pending until it settles here, unless an
            // abandon came first (which sets cancelled_): fill, at memory speed.
            std::memset(state_.data() + r.start, kOk, r.count);
            n = r.count;
        } else {
            for (std::size_t i = r.start; i < r.start + r.count; ++i) {
                if (state_[i] != kPending) continue;
                state_[i] = kOk;
                ++n;
            }
        }
        if (stop_on_error_ && !errs.empty()) n += cancel_unsent_locked();
    }
    add_done(n);
}

void OrderedMapCore::add_done(std::size_t n) {
    const std::size_t before = done_.fetch_add(n, std::memory_order_acq_rel);
    // Exactly one call moves the count onto the size; that one runs the hook.
    if (n > 0 && before + n == size_) {
        if (on_done_) on_done_();
        all_done_.notify_all();
    }
    notifier_.notify_all();
}

void wait_with_progress(OrderedMapCore& src, const Progress& progress, const char* label) {
    if (!progress.enabled()) {
        src.wait_all(Deadline::never());
        return;
    }
    ProgressBar bar(progress, src.size(), label);
    while (!src.wait_all(Deadline(ProgressBar::interval()))) bar.update(src.done_count());
    bar.finish(src.done_count());
}

}  // namespace mp::detail
