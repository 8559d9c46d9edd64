// The engine's side of the trace hook (trace_hook.hpp): each worker writes a record per task
// into a ring in its shared page (after the WorkerSlot), and the supervisor reads the rings as
// results come back, when a worker dies and when recording stops. No message is added per task.
//
//   slot memfd:  [ WorkerSlot | ... ]  [ TraceHeader: switch, counters, names ]  [ records ]
//                0                     kTraceOffset                            ring capacity
//
// The worker writes records and names; the supervisor writes the switch (`on`) and its read
// position. Names (functions, exception types) are interned in the header's table, so a record
// is fixed-size. The supervisor's hooks below are called only under `if (trace::on())`, except
// those that keep the registry of live workers (start and death), which run once per worker.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "trace_hook.hpp"

namespace mp::detail {

struct Worker;
struct EngineOptions;

namespace wire {

/// Where the trace area starts in a worker's slot memfd.
inline constexpr std::size_t kTraceOffset = 4096;
/// Names the table holds; later names are recorded as "?".
inline constexpr std::size_t kTraceNames = 64;
/// Bytes of one name, NUL included.
inline constexpr std::size_t kTraceNameBytes = 120;
/// Records the ring holds.
inline constexpr std::size_t kTraceRecords = std::size_t{1} << 15;

/// One task run, as the worker records it.
struct TraceRecord {
    std::uint64_t task;
    std::uint64_t start, end;
    std::uint64_t bytes_in, bytes_out;
    std::uint32_t batch;
    std::uint16_t fn;   // index into the names
    std::uint16_t exc;  // 0: ok; else 1 + index of the exception type's name
};

/// The head of the trace area.
struct TraceHeader {
    alignas(64) std::atomic<std::uint32_t> on;  // written by the supervisor
    alignas(64) std::atomic<std::uint64_t> read;
    alignas(64) std::atomic<std::uint64_t> written;
    std::atomic<std::uint64_t> dropped;
    std::atomic<std::uint64_t> cur_task;  // the task running (0: none), for a death
    std::atomic<std::uint64_t> cur_start;
    std::atomic<std::uint32_t> cur_fn;
    std::atomic<std::uint32_t> names;
    char name[kTraceNames][kTraceNameBytes];
};

/// Size of a worker's slot memfd: its WorkerSlot page, the trace header and the ring.
inline constexpr std::size_t kSlotWithTraceBytes =
    kTraceOffset + sizeof(TraceHeader) + kTraceRecords * sizeof(TraceRecord);

/// The worker's recorder; the switch costs one relaxed load and a predictable branch per task.
class TaskTracer {
public:
    /// Uses the trace area of a mapped slot of `bytes` bytes (none when too small).
    void attach(void* slot, std::size_t bytes) noexcept;
    /// True when the supervisor records.
    [[nodiscard]] bool on() const noexcept { return hdr_->on.load(std::memory_order_relaxed) != 0; }
    /// A batch arrived (numbers the batches, traced or not).
    void batch() noexcept { ++batch_; }
    /// The task `id` starts; `call` is its shipped call (names the function).
    void begin(std::uint64_t id, std::span<const std::byte> call) noexcept;
    /// In a catch block: the task threw the exception being handled.
    void failed() noexcept;
    /// The task ended with `result` (its encoded status and value or exception).
    void end(std::span<const std::byte> result) noexcept;

private:
    void note_error(std::span<const std::byte> result) noexcept;
    std::uint16_t intern(const std::string& name) noexcept;
    std::uint16_t function_name(std::span<const std::byte> call) noexcept;

    static TraceHeader off_;  // switched off for good: the header before attach()
    TraceHeader* hdr_ = &off_;
    TraceRecord* ring_ = nullptr;
    TraceRecord cur_{};
    std::uint32_t batch_ = 0;
};

/// The recorder of this worker process.
TaskTracer& task_tracer() noexcept;

}  // namespace wire

/// At an engine's start: reads MP_TRACE / MP_REPORT once per process.
void trace_engine_started();
/// A worker was started (at t0): registers its ring, switched on when recording.
void trace_worker_started(const Worker& w, const EngineOptions& opts, std::size_t number,
                          std::uint64_t t0);
/// A worker is about to be emptied (`how` it ended): reads its ring, records the task it was
/// running as died, forgets it.
void trace_worker_gone(const Worker& w, const std::string& how);
/// The scheduler took task `id` of `engine` from a source.
void trace_task_pulled(const void* engine, std::uint64_t id);
/// A batch of `tasks` tasks and `bytes` bytes went into w's outbox.
void trace_batch_sent(const Worker& w, std::size_t tasks, std::size_t bytes);
/// Results came from w: reads its ring.
void trace_results(const Worker& w);
/// The task `id` of `engine` was running when worker `pid` died: it runs again (retried) or is
/// quarantined.
void trace_task_lost(const void* engine, std::uint64_t id, pid_t pid, bool retried);

}  // namespace mp::detail
