// The progress report of long calls (multiproc/progress.hpp): a tqdm-like bar redrawn in place
// on a terminal, plain lines in a log, or a user's callback.
#include "multiproc/progress.hpp"

#include <algorithm>
#include <cstdio>
#include <string>

#include "sys/io.hpp"

namespace mp::detail {

StepProgress::StepProgress() noexcept = default;
StepProgress::StepProgress(const Progress& progress, std::optional<std::size_t> total,
                           const char* label)
    : bar_(progress.enabled() ? new ProgressBar(progress, total, label) : nullptr) {}
StepProgress::StepProgress(StepProgress&&) noexcept = default;
StepProgress& StepProgress::operator=(StepProgress&&) noexcept = default;
StepProgress::~StepProgress() = default;

namespace {

using Clock = std::chrono::steady_clock;

std::string clock_text(double seconds) {
    if (!(seconds >= 0) || seconds > 360000) return "--:--";
    const auto s = static_cast<long long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%02lld:%02lld", s / 60, s % 60);
    return buf;
}

std::string rate_text(double per_second) {
    char buf[32];
    if (per_second >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM/s", per_second / 1e6);
    else if (per_second >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk/s", per_second / 1e3);
    else std::snprintf(buf, sizeof buf, "%.1f/s", per_second);
    return buf;
}

}  // namespace

ProgressBar::ProgressBar(Progress progress, std::optional<std::size_t> total, const char* label)
    : p_(std::move(progress)), total_(total), label_(label), tty_(p_.bar_ && sys::is_terminal(2)),
      start_(Clock::now()), last_draw_(start_) {
    if (tty_) draw(0, false);
}

ProgressBar::~ProgressBar() {
    if (open_line_) sys::write_stderr("\n");
}

void ProgressBar::update(std::size_t done) {
    if (finished_) return;
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_draw_).count();
    if (tty_ || !p_.bar_) {
        if (since >= 0.1 && done != last_done_) draw(done, false);
        return;
    }
    // A log file gets a line when another tenth is done and at least 2 s have passed, or
    // after 30 s regardless: enough to follow a long job, never a flood.
    const bool tenth = total_ && *total_ > 0 && (done - last_done_) * 10 >= *total_;
    if ((tenth && since >= 2.0) || since >= 30.0) draw(done, false);
}

void ProgressBar::finish(std::size_t done) {
    if (finished_) return;
    draw(done, true);
    finished_ = true;
}

void ProgressBar::draw(std::size_t done, bool last) {
    const auto now = Clock::now();
    last_draw_ = now;
    last_done_ = done;
    if (!p_.bar_) {
        if (p_.call_) p_.call_(p_.fn_.get(), done, total_.value_or(0));
        return;
    }
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    std::string line;
    char head[96];
    if (total_) {
        const std::size_t total = *total_;
        const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
        std::snprintf(head, sizeof head, "%3d%% ", static_cast<int>(frac * 100.0));
        line += head;
        if (tty_) {
            constexpr int width = 30;
            const int fill = std::clamp(static_cast<int>(frac * width), 0, width);
            line += '|';
            line.append(static_cast<std::size_t>(fill), '#');
            line.append(static_cast<std::size_t>(width - fill), ' ');
            line += "| ";
        }
        std::snprintf(head, sizeof head, "%zu/%zu [", done, total);
        line += head;
        line += clock_text(elapsed);
        const double eta =
            rate > 0 ? static_cast<double>(total - std::min(done, total)) / rate : -1.0;
        line += last ? "" : "<" + clock_text(eta);
    } else {
        std::snprintf(head, sizeof head, "%zu [", done);
        line += head;
        line += clock_text(elapsed);
    }
    line += ", " + rate_text(rate) + "]";
    // One write a line: the bar never interleaves with itself, and a redraw clears leftovers.
    const std::string out = tty_ ? "\r" + line + "\x1b[K" + (last ? "\n" : "")
                                 : std::string(label_) + ": " + line + "\n";
    open_line_ = tty_ && !last;
    sys::write_stderr(out);
}

}  // namespace mp::detail
