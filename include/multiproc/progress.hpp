// mp::Progress: the progress report of a long call (Pool::map/starmap/imap/imap_unordered,
// ProcessPoolExecutor::map, as_completed, parallel_map): off by default.
//
//   pool.map(f, xs, mp::progress_bar());                    // tqdm's look on stderr
//   for (auto y : pool.imap(f, xs, mp::progress_bar())) ...
//   pool.map(f, xs, mp::progress_callback([&](std::size_t done, std::size_t total) {
//       gui.set_value(done, total);                         // a GUI's own widget
//   }));
//
// The bar shows the count, the percentage and ETA when the total is known, the elapsed time
// and the rate. On a terminal it is redrawn in place, at most ten times a second
// ("37%|###########       | 370/1000 [00:03<00:05, 123.4/s]"); when stderr is not a terminal (a
// log file, a pipe), a plain line "<call>: 37% 370/1000 [00:03<00:05, 123.4/s]" is written when
// another tenth is done and at least 2 s have passed (or every 30 s), and a last line at the
// end. The callback gets (done, total) instead, at most ten times a second plus once at the
// end; total is 0 when the input's size is not known (a lazy imap input).
//
// Who reports: the thread that waits (map) or iterates (imap, Executor::map, as_completed),
// as it waits or steps: done counts the results handed to it, so it only grows, and it
// reaches total when the call completes. The callback runs on that thread: it may touch what
// that thread may touch, and must not block for long (it delays the call). Copies of a
// Progress share the callback.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>

#include "multiproc/detail/owned.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

namespace detail {
class ProgressBar;
}

/// What progress a call reports: nothing (the default), a bar on stderr, or a callback.
class Progress {
public:
    /// No report.
    Progress() noexcept = default;
    /// True when something is reported.
    [[nodiscard]] bool enabled() const noexcept { return bar_ || call_ != nullptr; }

private:
    friend class detail::ProgressBar;
    friend Progress progress_bar() noexcept;
    template <class F>
    friend Progress progress_callback(F f);
    bool bar_ = false;
    std::shared_ptr<void> fn_;
    void (*call_)(void*, std::size_t, std::size_t) = nullptr;
};

/// A progress bar on stderr (tqdm's look on a terminal, plain lines otherwise).
[[nodiscard]] inline Progress progress_bar() noexcept {
    Progress p;
    p.bar_ = true;
    return p;
}

/// A progress report to f(std::size_t done, std::size_t total) on the waiting thread.
template <class F>
[[nodiscard]] Progress progress_callback(F f) {
    Progress p;
    auto held = std::make_shared<F>(std::move(f));
    p.call_ = [](void* self, std::size_t done, std::size_t total) {
        (*static_cast<F*>(self))(done, total);
    };
    p.fn_ = std::move(held);
    return p;
}

namespace detail {

/// Draws a Progress for one call: update() as results come, finish() at the end. A bar left
/// unfinished (an iteration abandoned, an exception) ends its line when destroyed.
class ProgressBar {
public:
    /// A report of `total` items (nullopt: unknown), its plain lines prefixed "<label>: ".
    ProgressBar(Progress progress, std::optional<std::size_t> total, const char* label);
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;
    /// Ends a terminal line left open.
    ~ProgressBar();
    /// Shows `done` if it is time to.
    void update(std::size_t done);
    /// The final report.
    void finish(std::size_t done);
    /// How long a waiting thread may sleep before the next update is due.
    [[nodiscard]] static std::chrono::milliseconds interval() noexcept {
        return std::chrono::milliseconds(100);
    }

private:
    void draw(std::size_t done, bool last);
    Progress p_;
    std::optional<std::size_t> total_;
    const char* label_;
    bool tty_ = false;
    bool open_line_ = false;
    bool finished_ = false;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_draw_;
    std::size_t last_done_ = 0;
};

/// A ProgressBar for a lazy iteration, counting the results stepped over (none when disabled).
class StepProgress {
public:
    // Out of line (src/progress.cpp): no program compiles the bar's ownership.
    StepProgress() noexcept;
    /// Reports `progress` for an iteration of `total` results (nullopt: unknown).
    StepProgress(const Progress& progress, std::optional<std::size_t> total, const char* label);
    StepProgress(StepProgress&&) noexcept;
    StepProgress& operator=(StepProgress&&) noexcept;
    ~StepProgress();
    /// One more result handed to the consumer.
    void step() {
        if (bar_) bar_->update(++done_);
    }
    /// The iteration ended.
    void end() {
        if (bar_) bar_->finish(done_);
    }

private:
    Owned<ProgressBar> bar_;
    std::size_t done_ = 0;
};

}  // namespace detail
}  // namespace mp
