// The worker process of the task engine: runs batches of shipped calls until told to exit.
// Protocol: src/engine_protocol.hpp.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "engine_protocol.hpp"
#include "exception_trace.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/detail/task.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"
#include "sys/memory.hpp"
#include "sys/sigmask.hpp"
#include "transport.hpp"
#include "worker_trace.hpp"

namespace mp::detail {

namespace {
WorkerProgress* g_progress = nullptr;

std::int64_t ns_of(std::chrono::steady_clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
}  // namespace

WorkerProgress* worker_progress_slot() noexcept { return g_progress; }

std::int64_t monotonic_ns() noexcept { return ns_of(std::chrono::steady_clock::now()); }

namespace {
int g_socket = -1;
}  // namespace

int wire::worker_socket() noexcept { return g_socket; }

namespace wire {
namespace {

// joblib's list (loky's _thread_limit variables), set in workers the user left alone.
constexpr const char* kThreadVars[] = {
    "OMP_NUM_THREADS",        "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",  "BLIS_NUM_THREADS",
};

// Results of tasks that take this long are sent at once rather than with the rest of their
// batch: a crash later in the batch then loses little finished work.
constexpr auto kFlushAfter = std::chrono::milliseconds(1);

// Runs the initializer; false (after telling the parent why) when it threw.
bool run_initializer(Transport& link, std::span<const std::byte> call, std::span<UniqueFd> fds) {
    Encoder out;
    try {
        run_shipped_task(call, fds, out);
    } catch (...) {
        out.bytes().clear();
        encode_task_error(out, std::current_exception());
    }
    const auto& b = out.bytes();
    if (!b.empty() && b[0] == static_cast<std::byte>(TaskStatus::ok)) return true;
    put_frame(link.out().bytes, Kind::init_failed, std::span<const std::byte>(b).subspan(1));
    link.send_all();
    return false;
}

// The results of one batch, encoded as they come (an Encoder, so that results may carry
// descriptors) and sent as one frame, or several when tasks are slow.
class ResultBatch {
public:
    explicit ResultBatch(Transport& link) : link_(link) { reset(); }
    Encoder& begin(std::uint64_t id) {
        frame_->begin(id);
        fds_before_ = e_.fds().size();
        return e_;
    }
    void end(std::uint64_t ns) {
        frame_->end(static_cast<std::uint32_t>(e_.fds().size() - fds_before_), ns);
    }
    [[nodiscard]] bool empty() const { return frame_->count() == 0; }
    void flush() {
        if (empty()) return;
        frame_->finish(static_cast<std::uint32_t>(e_.fds().size()));
        auto& out = link_.out();
        out.bytes.swap(e_.bytes());
        out.fds = e_.fds();
        link_.send_all();
        e_.bytes().swap(out.bytes);  // keeps the buffer's capacity for the next batch
        reset();
    }

private:
    void reset() {
        std::vector<std::byte> keep = std::move(e_.bytes());
        keep.clear();
        frame_.reset();
        e_ = Encoder();
        e_.bytes() = std::move(keep);
        frame_.emplace(e_.bytes(), Kind::results);
    }
    Transport& link_;
    Encoder e_;
    std::optional<RecordWriter> frame_;
    std::size_t fds_before_ = 0;
};

// Before results are sent, with a memory bound: a worker over it asks to retire (the supervisor
// reads the flag with those results, sends the exit frame, and replaces it).
void check_memory(WorkerSlot* slot, std::uint64_t max_rss) {
    if (max_rss && sys::resident_set_bytes() > max_rss)
        slot->retire.store(1, std::memory_order_relaxed);
}

void run_batch(Frame& f, WorkerSlot* slot, ResultBatch& results, std::uint64_t max_rss) {
    FrameRecords records(Kind::tasks, f.payload, f.fds.size());
    auto last_flush = std::chrono::steady_clock::now();
    TaskTracer& tracer = task_tracer();
    tracer.batch();
    for (FrameRecord rec; records.next(rec);) {
        const bool traced = tracer.on();
        auto task_fds = std::span<UniqueFd>(f.fds).subspan(rec.first_fd, rec.nfds);
        // The start time is published before the task id, so that a supervisor that reads the
        // id reads this task's start (or a later one), never an earlier task's.
        const auto t0 = std::chrono::steady_clock::now();
        slot->started_ns.store(ns_of(t0), std::memory_order_relaxed);
        slot->element.store(0, std::memory_order_relaxed);
        slot->task.store(rec.id, std::memory_order_release);
        Encoder& out = results.begin(rec.id);
        const std::size_t mark = out.bytes().size();
        if (traced) tracer.begin(rec.id, rec.bytes);
        try {
            run_shipped_task(rec.bytes, task_fds, out);
        } catch (...) {
            if (traced) tracer.failed();
            out.bytes().resize(mark);
            encode_task_error(out, std::current_exception());
        }
        if (traced) tracer.end(std::span<const std::byte>(out.bytes()).subspan(mark));
        const auto t1 = std::chrono::steady_clock::now();
        results.end(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
        slot->task.store(0, std::memory_order_release);
        for (auto& fd : task_fds) fd.reset();
        if (t1 - last_flush >= kFlushAfter) {
            check_memory(slot, max_rss);
            results.flush();
            last_flush = std::chrono::steady_clock::now();
        }
    }
    if (!results.empty()) check_memory(slot, max_rss);  // else checked at the last flush
    results.flush();
}

}  // namespace

void worker_main(Connection conn, WorkerBoot boot) {
    // The supervisor thread that may have forked us blocks every signal; a worker must die of
    // SIGSEGV, SIGTERM, ... as any process does. The terminal's Ctrl-C is the parent's business.
    sys::unblock_all_signals();
    sys::ignore_signal(SIGINT);
    // The worker's death signal was armed as for any daemonic child (run_child): it follows
    // the parent process, whichever of its threads started the worker.
    record_throw_traces(true);
    set_thread_limits(boot.threads);
    g_socket = conn.fileno();
    const auto link = socket_transport(UniqueFd::dup_of(conn.fileno()), "multiproc: worker");
    serve_engine(*link, boot.max_rss);
}

void set_thread_limits(int threads) {
    if (threads <= 0) return;
    const std::string n = std::to_string(threads);
    for (const char* v : kThreadVars)
        if (!std::getenv(v)) ::setenv(v, n.c_str(), 0);
}

bool serve_engine(Transport& link, std::uint64_t max_rss) {
    Frame f;
    try {
        if (!link.receive_frame(f)) return false;
        if (f.kind() != Kind::init) return true;
        // A local worker's progress page is the init frame's first descriptor; a worker of a
        // WorkerHost (an MPI rank) shares no memory with its supervisor and keeps its own.
        WorkerSlot own_slot{};
        WorkerSlot* slot = &own_slot;
        sys::Mapping slot_map;
        std::span<UniqueFd> init_fds(f.fds);
        if (!f.fds.empty()) {
            const std::size_t slot_bytes = sys::file_size(f.fds[0].get());
            if (slot_bytes < sizeof(WorkerSlot))
                throw DecodeError("multiproc: worker: progress slot too small");
            slot_map = sys::Mapping::map_shared(f.fds[0].get(), slot_bytes);
            slot = reinterpret_cast<WorkerSlot*>(slot_map.data());
            task_tracer().attach(slot_map.data(), slot_bytes);
            init_fds = init_fds.subspan(1);
        }
        g_progress = slot;
        Decoder d(f.payload);
        const auto n = d.read_count(1);
        if (n) {
            auto call = d.take(n);
            if (!run_initializer(link, call, init_fds)) return true;
        }
        put_frame(link.out().bytes, Kind::ready);
        link.send_all();

        ResultBatch results(link);
        while (link.receive_frame(f)) {
            if (f.kind() == Kind::exit) break;
            if (f.kind() != Kind::tasks) throw DecodeError("multiproc: worker: unexpected frame");
            run_batch(f, slot, results, max_rss);
        }
        g_progress = nullptr;
    } catch (const EOFError&) {
        // The parent went away while we were sending: nothing left to do.
        g_progress = nullptr;
    }
    return true;
}

}  // namespace wire
}  // namespace mp::detail
