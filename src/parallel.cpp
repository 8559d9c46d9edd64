// The non-template half of parallel_map / parallel_for: job counts, the engine of a Parallel,
// the progress bar.
#include "multiproc/parallel.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <string>

#include "multiproc/process.hpp"
#include "sys/io.hpp"

namespace mp {
namespace detail {

int resolve_jobs(int jobs) {
    if (jobs == 0)
        throw UsageError("mp::parallel_map: jobs == 0 has no meaning (use -1 for every CPU)");
    if (jobs > 0) return jobs;
    // joblib: -1 is every CPU, -2 all but one, ... and never fewer than one.
    return std::max(1, process_cpu_count() + 1 + jobs);
}

bool in_pool_worker() noexcept { return worker_progress_slot() != nullptr; }

ParallelOptions options_for(ParallelOptions options, std::size_t n) {
    const int jobs = resolve_jobs(options.jobs);
    if (n == 0) options.jobs = 1;  // nothing to do: no workers
    else if (jobs > 1 && static_cast<std::size_t>(jobs) > n)
        options.jobs = static_cast<int>(std::max<std::size_t>(n, 2));
    return options;
}

std::unique_ptr<Engine> make_parallel_engine(int processes, const std::optional<Context>& context) {
    EngineOptions eo;
    eo.processes = processes;
    eo.context = context;
    eo.owner = "mp::parallel_map";
    return std::make_unique<Engine>(std::move(eo));
}

// --- the progress bar --------------------------------------------------------------------------

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

ProgressBar::ProgressBar(std::size_t total)
    : total_(total), tty_(sys::is_terminal(2)), start_(Clock::now()), last_draw_(start_) {
    if (tty_) draw(0, false);
}

std::chrono::milliseconds ProgressBar::interval() const noexcept {
    return std::chrono::milliseconds(100);
}

void ProgressBar::update(std::size_t done) {
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_draw_).count();
    if (tty_) {
        if (since >= 0.1) draw(done, false);
        return;
    }
    // A log file gets a line when another tenth is done and at least 2 s have passed, or
    // after 30 s regardless: enough to follow a long job, never a flood.
    const bool tenth = total_ > 0 && (done - last_done_) * 10 >= total_;
    if ((tenth && since >= 2.0) || since >= 30.0) draw(done, false);
}

void ProgressBar::finish(std::size_t done) { draw(done, true); }

void ProgressBar::draw(std::size_t done, bool last) {
    const auto now = Clock::now();
    last_draw_ = now;
    last_done_ = done;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    const double eta =
        rate > 0 ? static_cast<double>(total_ - std::min(done, total_)) / rate : -1.0;
    const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    const int pct = static_cast<int>(frac * 100.0);
    std::string line;
    char head[96];
    std::snprintf(head, sizeof head, "%3d%% ", pct);
    line += head;
    if (tty_) {
        constexpr int width = 30;
        const int fill = static_cast<int>(frac * width);
        line += '|';
        line.append(static_cast<std::size_t>(fill), '#');
        line.append(static_cast<std::size_t>(width - fill), ' ');
        line += "| ";
    }
    std::snprintf(head, sizeof head, "%zu/%zu [", done, total_);
    line += head;
    line += clock_text(elapsed);
    line += last ? "" : "<" + clock_text(eta);
    line += ", " + rate_text(rate) + "]";
    // One write a line: the bar never interleaves with itself, and a redraw clears leftovers.
    std::string out =
        tty_ ? "\r" + line + "\x1b[K" + (last ? "\n" : "") : "parallel_map: " + line + "\n";
    sys::write_stderr(out);
}

}  // namespace detail

// --- Parallel ----------------------------------------------------------------------------------

Parallel::Parallel(ParallelOptions options) : opts_(std::move(options)) {
    jobs_ = detail::resolve_jobs(opts_.jobs);
    in_place_ = jobs_ == 1;
}

Parallel::~Parallel() {
    std::shared_ptr<detail::Engine> e;
    {
        std::lock_guard lk(m_);
        e = std::move(engine_);
    }
    if (!e) return;
    // Every call has returned, so the workers are idle: let them exit cleanly.
    e->close();
    try {
        e->join();
    } catch (...) {
        e->terminate();
    }
}

std::shared_ptr<detail::Engine> Parallel::acquire() {
    std::lock_guard lk(m_);
    if (engine_ && engine_->broken()) engine_.reset();
    if (!engine_) engine_ = detail::make_parallel_engine(jobs_, opts_.context);
    return engine_;
}

void Parallel::discard() noexcept {
    std::shared_ptr<detail::Engine> e;
    {
        std::lock_guard lk(m_);
        e = std::move(engine_);
    }
    if (e) e->terminate();
}

}  // namespace mp
