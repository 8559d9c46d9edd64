// Seeing what a pool does: a timeline of every task for Perfetto and chrome://tracing (Ray's
// ray.timeline()), and a self-contained HTML performance report (Dask's performance_report).
//
//   MP_TRACE=run.json ./prog        or   mp::trace::start("run.json"); ...; mp::trace::stop();
//   MP_REPORT=report.html ./prog    or   { mp::performance_report r("report.html"); ... }
//
// What is recorded: every task of Pool, ProcessPoolExecutor and parallel_map (worker pid,
// function, submit/start/end times, bytes in and out, batch, outcome: ok, exception type,
// worker death, retry), worker process starts (start method, latency) and exits, and the
// batches the supervisor sent; queue and lock waits above a threshold and manager calls, in
// the process that waited or called (a child too); the starts and exits of mp::Process
// children. Workers write their own events into shared memory that the
// parent reads as results come back and at stop: tracing adds no message per task. All
// processes read CLOCK_MONOTONIC, so the tracks align. docs/observability.md has the format.
//
// Workers started before start() are traced too (the switch is in their shared page). The
// environment variables are read when the first pool of the process starts, and the files are
// written at exit (or by stop()); a child process never writes them.
//
// Thread safety: start, stop and performance_report may be called from any thread; recording
// itself runs on the pools' supervisor threads. With tracing off, the engine pays one
// predictable branch per task.
#pragma once

#include <string>

// std::chrono::microseconds, without <chrono>'s calendar and time zones (see std_parts.hpp).
#include "multiproc/detail/std_parts.hpp"

namespace mp::trace {

/// Starts recording a timeline written to `path` (Chrome Trace Event JSON) by stop().
void start(const std::string& path);
/// Stops the timeline and writes it; does nothing when no timeline is being recorded.
void stop();
/// Waits (queue get/put, lock) shorter than this are left off the timeline (default 1 ms, or
/// MP_TRACE_WAIT_US); children take the value in force when they start.
void set_wait_threshold(std::chrono::microseconds threshold);
/// True while a timeline or a performance report is being recorded.
[[nodiscard]] bool active() noexcept;

}  // namespace mp::trace

namespace mp {

/// While alive, records what the pools do; its destructor writes one self-contained HTML
/// report to `path` (Dask's `with performance_report(filename=...)`). Errors writing the file
/// are reported on stderr, never thrown from the destructor.
class performance_report {
public:
    /// Starts recording for a report written to `path` when this scope ends.
    explicit performance_report(std::string path);
    /// Writes the report and stops recording (unless a timeline still records).
    ~performance_report();
    performance_report(const performance_report&) = delete;
    performance_report& operator=(const performance_report&) = delete;

private:
    std::string path_;
};

}  // namespace mp
