// The trace hook (DESIGN.md 13): the one switch every engine event checks, and the store of a
// recording session that the timeline (trace_json.cpp) and the HTML report (trace_report.cpp)
// are written from. A leaf: it includes nothing of the project, so any layer can afford it.
// The engine layer (worker_trace.cpp) turns its shared-memory records into these events and
// registers a provider that switches the workers' rings on and off and drains them at stop.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mp::detail::trace {

/// The switch: true while a timeline or a report records. Read relaxed: one predictable branch.
extern std::atomic<bool> g_on;
/// True while recording.
inline bool on() noexcept { return g_on.load(std::memory_order_relaxed); }
/// CLOCK_MONOTONIC (std::chrono::steady_clock) in nanoseconds: the same clock in every process.
std::uint64_t now_ns() noexcept;

/// How a task ended.
enum class Outcome : std::uint8_t { ok, exception, died };

/// One run of a task on one worker.
struct TaskEvent {
    pid_t pid = 0;
    std::uint64_t task = 0;
    std::uint32_t batch = 0;    ///< the worker's batch number it travelled in (1, 2, ...)
    std::uint32_t attempt = 1;  ///< 2 and up: a retry after its worker died
    std::uint64_t submit = 0, start = 0, end = 0;
    std::uint64_t bytes_in = 0, bytes_out = 0;
    std::string fn;
    Outcome outcome = Outcome::ok;
    std::string detail;  ///< the exception type, or how the worker died
};

/// A span (end > start) or an instant (end == start) on a process's track.
struct SpanEvent {
    pid_t pid = 0;
    std::string name;
    std::string cat;
    std::uint64_t start = 0, end = 0;
    std::string args;  ///< a JSON object's members, without braces ("" for none)
};

/// A process with a track: a worker, or the supervisor (the parent).
struct ProcessEvent {
    pid_t pid = 0;
    std::string name;
    std::string method;  ///< start method ("" for the supervisor)
    std::uint64_t start = 0, started = 0, exit = 0;
    std::string how;  ///< "exited with code 0", ... ("" while alive)
    bool supervisor = false;
};

/// One batch the supervisor sent to a worker.
struct BatchEvent {
    pid_t pid = 0;
    std::uint32_t seq = 0;
    std::uint32_t tasks = 0;
    std::uint64_t bytes = 0;
    std::uint64_t t = 0;
};

/// Everything a session recorded.
struct Recording {
    std::uint64_t t0 = 0, t1 = 0;
    std::vector<TaskEvent> tasks;
    std::vector<SpanEvent> spans;
    std::vector<ProcessEvent> processes;
    std::vector<BatchEvent> batches;
    std::uint64_t dropped = 0;  ///< task records lost to a full ring
};

/// Appends to the session (no effect when not recording).
void add(TaskEvent&& e);
/// Appends several task runs at once.
void add(std::vector<TaskEvent>&& es);
/// Appends a span or an instant.
void add(SpanEvent&& e);
/// Records a process (its exit is set later with process_exited).
void add(ProcessEvent&& e);
/// Records a batch.
void add(const BatchEvent& e);
/// Sets the exit of a recorded process; false when it was recorded already (or never).
bool process_exited(pid_t pid, std::uint64_t t, const std::string& how);
/// Counts task records a worker could not store.
void add_dropped(std::uint64_t n);

/// What the session asks of the engine: switch the workers' rings on, read what they hold,
/// switch them off.
enum class Ask : std::uint8_t { start, drain, stop };
/// The engine's answer to an Ask; runs without the session's lock held.
using Provider = void (*)(Ask what);
/// Registers the engine's provider (once, at the first pool).
void set_provider(Provider p) noexcept;

/// `s` as a JSON string literal, quotes included.
std::string json_string(const std::string& s);
/// The name of an outcome: "ok", "exception", "died".
const char* outcome_name(Outcome o) noexcept;

/// Writes a recording as Chrome Trace Event JSON (trace_json.cpp); false on an I/O error.
bool write_json(const Recording& r, const std::string& path);
/// Writes a recording as the HTML report (trace_report.cpp); false on an I/O error.
bool write_report(const Recording& r, const std::string& path);

// --- waits, manager calls and processes (trace_waits.cpp) -----------------------------------
// These events come from any process: the recording one adds them to its session; a child
// (Process child or pool worker) appends them, one line per event and one write(2) per line,
// to its own file in the recording parent's directory /tmp/multiproc-trace-<parent pid>, which
// the parent merges when it writes the file (a torn last line of a killed child is skipped).

/// The switch of wait and call events: set while this process records, or, in a child, when
/// its parent recorded as it started. Read relaxed: one predictable branch.
extern std::atomic<bool> g_events_on;
/// True when waits and calls are recorded in this process.
inline bool events_on() noexcept { return g_events_on.load(std::memory_order_relaxed); }
/// Waits shorter than this are not recorded (MP_TRACE_WAIT_US at start, default 1000 us).
std::uint64_t wait_threshold_ns() noexcept;
/// Records an event of this process (its pid is filled in): into the session, or a child's file.
void record(SpanEvent&& e) noexcept;

/// Tells a WaitSpan that the call blocks from its construction on.
struct BlocksNow {};
/// The BlocksNow value.
inline constexpr BlocksNow blocks_now{};

/// A wait that may block: begin() where the call is about to block (the slow path only); the
/// wait is recorded at scope end when it lasted at least the threshold.
class WaitSpan {
public:
    /// `what`: "queue get", "queue put", "lock" (a string literal).
    explicit WaitSpan(const char* what) noexcept : what_(what) {}
    /// A wait that starts now.
    WaitSpan(const char* what, BlocksNow) noexcept : what_(what) { begin(); }
    ~WaitSpan() {
        if (t0_) done();
    }
    WaitSpan(const WaitSpan&) = delete;
    WaitSpan& operator=(const WaitSpan&) = delete;
    /// The call blocks: starts the clock (once), when events are recorded.
    void begin() noexcept {
        if (!t0_ && events_on()) t0_ = now_ns();
    }

private:
    void done() noexcept;
    const char* what_;
    std::uint64_t t0_ = 0;
};

/// True while children started now are to record into this process's directory: it records,
/// and is not itself a child writing to its parent's. Read when a child's identity is built,
/// so that a child of a process that does not record opens no file at its start.
[[nodiscard]] bool children_record() noexcept;
/// In every child as it starts (run_child): forgets the parent's recording state, then, when
/// the parent recorded (children_record() there as it started this child), records into the
/// parent's directory if it still exists.
void child_started(pid_t parent, pid_t self, bool parent_records) noexcept;
/// A Process of this process started at t0 (`method` its start method).
void process_started(pid_t pid, const std::string& name, std::string_view method, std::uint64_t t0);
/// A Process of this process ended with `code` (Python's exitcode: -N for signal N).
void process_ended(pid_t pid, int code);
/// The recording starts: the children's directory is made (under the session's lock).
void children_begin(std::uint64_t threshold_ns);
/// Moves what children wrote since the last call into `r` (under the session's lock).
void children_merge(Recording& r);
/// The recording ends: the children's directory is removed (under the session's lock).
void children_end();

/// Starts a timeline (json) or a report (html) session from the environment's MP_TRACE /
/// MP_REPORT values; written by finish_environment().
void start_environment(const char* json, const char* html);
/// Writes and stops what start_environment started.
void finish_environment();

}  // namespace mp::detail::trace
