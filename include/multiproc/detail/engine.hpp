// The task engine under mp::Pool, mp::ProcessPoolExecutor and mp::parallel_map (DESIGN.md 5).
//
// HOW A FRONT END USES IT
//
//   1. Make one Engine (EngineOptions: worker count, start method, initializer, maxtasksperchild,
//      retries). Its workers start at once and live until join() or terminate().
//   2. Describe work as a TaskSource (a subclass) and hand it over with submit(shared_ptr). The
//      engine's thread then calls, one call at a time and never concurrently for one source:
//        pull(hint, slot)     "give me one task of about `hint` work items": the source fills
//                             slot.call (a packaged call, see detail/task.hpp: package_pool_task
//                             for one call, package_chunk for a batch of map elements),
//                             slot.tag (its own name for the task) and slot.elements. Return
//                             false when it has nothing right now (a window is full) or ever
//                             (then exhausted() must say so).
//        complete(tag, bytes) the task's result as the worker encoded it (decode with
//                             decode_task_result<R> or decode_chunk_result; the bytes are only
//                             valid during the call)
//        fail(tag, error)     the task cannot complete: its worker died (BrokenProcessPool
//                             naming pid and signal or exit code), a retry budget ran out, ...
//        lost(tag, element, error)  as fail, but the worker said which work item of a chunk it
//                             was running when it died (default: fail(tag, error))
//        abandon(error)       the engine was terminated or broke: every task of this source
//                             that has not completed must fail with `error`. Called once; after
//                             it, nothing else is called.
//        holds(tag, token)    whether `tag` still names the task that `token` (its result state)
//                             was handed, for a kill request (EngineLink::kill_task) that may
//                             arrive after the tag was reused (default: true)
//      A source is dropped (no further calls) once exhausted() and none of its tasks is in
//      flight. Call wake() when a source that returned false from pull may have tasks now.
//   3. Results travel back to whoever waits through the source (a Notifier gives blocking waits
//      that signals do not fail, and Ctrl-C under mp::SigintGuard interrupts: see Notifier).
//   4. close() then join() drains and stops the workers; terminate() kills them and abandons
//      every source. The destructor terminates.
//
// GUARANTEES
//   - Long-lived workers; tasks and results travel in batches; each worker holds at most two
//     batches (one running, one prefetched), so it never idles on a round trip; idle workers
//     are served first, each with at most its share of the tasks waiting (so no task waits
//     behind a running one while a worker is idle), then the busy ones' prefetch; `hint`
//     grows for short tasks and shrinks for long ones (measured per source; target about 2 ms
//     of work a task, at most a quarter of what remains per worker).
//   - A worker that dies fails exactly the task it was running (lost()/fail() with
//     mp::BrokenProcessPool naming its pid and its signal or exit code), unless retries > 0:
//     then that task runs again on another worker, up to `retries` times, and fails with the
//     whole history once it has killed retries + 1 workers (quarantine). Other tasks it held
//     (prefetched, or finished with their results lost) run again elsewhere. The worker is
//     replaced. An initializer that throws or kills its worker breaks the engine: every task
//     fails with BrokenProcessPool carrying the initializer's error (never a respawn loop).
//   - A task may carry a time limit (TaskSlot::timeout_ns, else EngineOptions::task_timeout_ns),
//     counted from the moment its worker starts it; for a chunk of map items, from the moment
//     the worker starts each item. The loop's poll wakes for the nearest limit (no thread per
//     task; with no limit in flight, it costs nothing). A worker past its task's limit gets
//     SIGTERM, then SIGKILL after a short grace; the task (the item, for a chunk) fails through
//     lost() with mp::TimeoutError naming its function and the limit, and is not retried unless
//     retry_timeouts; the worker's other tasks run again elsewhere. A kill request
//     (EngineLink::kill_task, Future::cancel(mp::force)) kills the worker holding the task the
//     same way; the task fails with mp::CancelledError. A request for every task of a source
//     (EngineLink::every_task: a map cancelled with force) abandons the source with
//     mp::CancelledError and kills the workers that run its tasks.
//   - With max_memory_per_child, a worker whose resident set exceeds it after a batch retires
//     (finishes what it holds, exits, is replaced). restarts() counts replacements by reason.
//   - Workers ignore SIGINT (the parent decides what a Ctrl-C does), have every signal unblocked, get OMP_NUM_THREADS & co. (unless the
//     user set them) so that workers x threads <= cores, and die with their parent (daemonic,
//     PR_SET_PDEATHSIG).
//
// THREAD SAFETY: submit, wake, close, join, terminate and the queries may be called from any
// thread. Source callbacks run one at a time, never concurrently, under the engine's loop lock:
// on the engine's thread, except that pull (and abandon, for a source whose pull threw) may run
// on a thread inside submit(), which sends new tasks itself while the engine's thread sleeps
// (one thread hop fewer per task). complete, fail and lost always run on the engine's thread
// (so does every user callback a front end calls from them). Callbacks must not block on
// results of the same engine.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "multiproc/callable.hpp"
#include "multiproc/context.hpp"
#include "multiproc/detail/fd.hpp"
#include "multiproc/detail/owned.hpp"
#include "multiproc/engine_stats.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

/// A time limit for one task, given before the function to Pool::apply_async and
/// ProcessPoolExecutor::submit (made by mp::task_timeout): it overrides the pool's
/// task_timeout for that call.
struct TaskTimeout {
    std::int64_t ns = 0;  ///< 0: no limit (-1, internally: the pool's default)
};

/// The limit of one task, counted from the moment a worker starts it: past it, the worker is
/// killed and the task fails with mp::TimeoutError. mp::task_timeout(mp::forever) lifts the
/// pool's default for that call; a limit of zero or less is raised to one nanosecond.
constexpr TaskTimeout task_timeout(Timeout limit) noexcept {
    if (limit.is_forever()) return {};
    const auto ns = limit.duration().count();
    return {ns > 0 ? ns : 1};
}

/// Tag of Future::cancel(mp::force), AsyncResult::cancel(mp::force) and
/// IMapIterator::cancel(mp::force): stop running tasks by killing their workers (as
/// ray.cancel(force=True)).
struct force_t {
    explicit constexpr force_t() = default;
};
/// Asks cancel to stop tasks that are already running.
inline constexpr force_t force{};

}  // namespace mp

namespace mp::detail {

/// A packaged call whose descriptors the engine owns (so argument handles may go away).
struct OwnedCall {
    std::vector<std::byte> bytes;
    std::vector<UniqueFd> fds;

    /// Takes the bytes and duplicates the (borrowed) descriptors of a ShippedCall.
    static OwnedCall adopt(ShippedCall&& call);
};

/// One task, as a source hands it to the engine.
struct TaskSlot {
    std::uint64_t tag = 0;     ///< the source's name for the task, given back to complete/fail
    std::size_t elements = 1;  ///< how many work items the task covers (for chunk sizing)
    OwnedCall call;            ///< the packaged call
    /// Time limit of the task (of each item of a chunk) once started, in ns: -1 the engine's
    /// default (EngineOptions::task_timeout_ns), 0 none.
    std::int64_t timeout_ns = -1;
};

/// Produces tasks and receives their outcomes; see the header comment for the protocol.
class TaskSource {
public:
    virtual ~TaskSource() = default;
    /// Fills slot with one task of about `hint` work items; false when there is none now.
    virtual bool pull(std::size_t hint, TaskSlot& slot) = 0;
    /// True when pull will never produce a task again.
    [[nodiscard]] virtual bool exhausted() const = 0;
    /// Work items not pulled yet, when known (bounds chunk sizes for load balance).
    [[nodiscard]] virtual std::optional<std::size_t> remaining() const { return std::nullopt; }
    /// The task's result bytes (status + value or exception), valid during the call only.
    virtual void complete(std::uint64_t tag, std::span<const std::byte> result,
                          std::span<UniqueFd> fds) = 0;
    /// The task failed without a result (its worker died, ...).
    virtual void fail(std::uint64_t tag, std::exception_ptr error) = 0;
    /// The task's worker died while running work item `element` of it (0 for a single call).
    virtual void lost(std::uint64_t tag, std::size_t element, std::exception_ptr error) {
        static_cast<void>(element);
        fail(tag, std::move(error));
    }
    /// Every task not completed yet fails with error; the last call the source receives.
    virtual void abandon(std::exception_ptr error) = 0;
    /// Whether `tag` still names the task whose result state is `token` (see kill_task).
    [[nodiscard]] virtual bool holds(std::uint64_t tag, const void* token) const {
        static_cast<void>(tag);
        static_cast<void>(token);
        return true;
    }
};

class WorkerHost;

/// How an engine is built.
struct EngineOptions {
    int processes = 0;                     ///< <= 0: mp::cpu_count()
    std::optional<Context> context;        ///< start method; empty: the default one
    std::optional<OwnedCall> initializer;  ///< run once in every worker before its first task
    std::size_t max_tasks_per_child = 0;   ///< 0: workers live as long as the engine
    int retries = 0;                       ///< re-runs of a task whose worker died
    std::string owner = "mp::Pool";        ///< named in error messages
    /// Where the workers run when not in local processes (the "mpi" context's ranks): set by
    /// the engine from the context.
    std::shared_ptr<WorkerHost> host;
    std::int64_t task_timeout_ns = 0;      ///< default time limit of a task, in ns (0: none)
    bool retry_timeouts = false;           ///< a timed-out task counts against `retries`
    std::size_t max_memory_per_child = 0;  ///< retire a worker whose RSS exceeds it (0: never)
};

/// Sets the per-task limits the pool front ends share: a default time limit (forever: none),
/// whether timeouts count against retries, and the memory bound of a worker (0: none).
inline void set_worker_limits(EngineOptions& eo, Timeout task_timeout, bool retry_timeouts,
                              std::size_t max_memory_per_child) {
    eo.task_timeout_ns = mp::task_timeout(task_timeout).ns;
    eo.retry_timeouts = retry_timeouts;
    eo.max_memory_per_child = max_memory_per_child;
}

class EngineImpl;
struct WakeChannel;

/// A source's hold on its engine: enough to wake it, and safe to use after the engine is gone
/// (an imap iterator or a future read after its Pool or Executor was destroyed: the wake then
/// reaches nobody, and the source itself reports mp::BrokenProcessPool, since the engine
/// abandoned it on its way out).
class EngineLink {
public:
    explicit EngineLink(std::shared_ptr<WakeChannel> channel) noexcept;
    /// Asks the engine, if it still runs, to pull again (Engine::wake).
    void wake() const noexcept;
    /// Asks the engine to kill the worker holding src's task `tag` (if src->holds(tag, token)
    /// when the engine gets to it): the task fails with mp::CancelledError, the worker is
    /// replaced, its other tasks run elsewhere. A task not on a worker yet just fails.
    /// With tag every_task, every task of src goes: see every_task.
    void kill_task(std::shared_ptr<TaskSource> src, std::uint64_t tag, const void* token) const;
    /// kill_task's tag for a whole source (a map cancelled with force): src pulls nothing more
    /// and is abandoned with mp::CancelledError; a worker running one of its tasks, or holding
    /// nothing else, is killed and replaced; a worker that holds one behind another source's
    /// task is killed only if it starts it; the other sources' tasks of a killed worker run
    /// again elsewhere.
    static constexpr std::uint64_t every_task = ~std::uint64_t{0};

private:
    std::shared_ptr<WakeChannel> channel_;
};

/// The engine: workers, a supervisor thread, the task protocol. Non-copyable, non-movable.
class Engine {
public:
    /// Starts the workers (std::system_error / mp::ProcessError when they cannot start).
    explicit Engine(EngineOptions options);
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    /// terminate().
    ~Engine();

    /// Queues a source. On a terminated or broken engine, src->abandon() runs at once (here).
    void submit(std::shared_ptr<TaskSource> src);
    /// Asks the engine to pull again (a source that said "nothing now" may have tasks).
    void wake() noexcept;
    /// What a source keeps instead of a reference to the engine (see EngineLink).
    [[nodiscard]] EngineLink link() const;
    /// No more submissions are expected; join() may follow. Idempotent.
    void close() noexcept;
    /// After close(): waits until every source is done, then stops the workers and the thread.
    /// Signal handlers do not end it; Ctrl-C under mp::SigintGuard throws mp::KeyboardInterrupt.
    void join();
    /// Kills the workers, abandons every source with BrokenProcessPool, stops the thread.
    /// Idempotent; never blocks for long (workers are SIGKILLed).
    void terminate() noexcept;
    /// terminate(), signalling the workers with SIGTERM first (SIGKILL for those still alive
    /// after a short grace) when `gently`.
    void terminate(bool gently) noexcept;

    /// The number of workers kept running.
    [[nodiscard]] int processes() const noexcept;
    /// Pids of the workers running now (for diagnostics and tests).
    [[nodiscard]] std::vector<pid_t> worker_pids() const;
    /// The error every task gets once the engine broke (initializer failure), else null.
    [[nodiscard]] std::exception_ptr broken() const;
    /// A consistent snapshot of the engine's statistics (multiproc/engine_stats.hpp).
    [[nodiscard]] PoolStats stats() const;

private:
    Owned<EngineImpl> impl_;
};

/// A condition that waiting threads block on: a futex on a private counter (sliced while the
/// thread holds an mp::SigintGuard, to look at the SIGINT flag: src/sys/signals.hpp). Other
/// signals' handlers never end the wait (PEP 475); Ctrl-C under a guard throws
/// mp::KeyboardInterrupt. notify_all() costs no system call when nobody waits, and one futex
/// wake otherwise: no descriptor, no lock, so a woken waiter never contends with its waker.
class Notifier {
public:
    /// Wakes every thread blocked in wait (they re-check their predicate).
    void notify_all() noexcept;
    /// Blocks until ready() is true (returns true) or the deadline passes (returns ready()).
    /// Throws mp::KeyboardInterrupt on Ctrl-C under mp::SigintGuard (ready() may be true later).
    template <class Pred>
    bool wait(Pred ready, Deadline deadline) {
        if (ready()) return true;
        Waiting counted(*this);
        for (;;) {
            // The counter is read before the predicate: a notify_all after this read changes it,
            // so block returns at once instead of missing the wake-up.
            const std::uint32_t seen = seq_.load(std::memory_order_seq_cst);
            if (ready()) return true;
            if (!block(seen, deadline)) return ready();
        }
    }

private:
    // Counts a waiter for its wait's whole length, so notify_all skips the wake when there is
    // none (seq_cst on both sides: a waiter counted too late reads the new counter).
    class Waiting {
    public:
        explicit Waiting(Notifier& n) noexcept : n_(n) {
            n_.waiting_.fetch_add(1, std::memory_order_seq_cst);
        }
        Waiting(const Waiting&) = delete;
        Waiting& operator=(const Waiting&) = delete;
        ~Waiting() { n_.waiting_.fetch_sub(1, std::memory_order_seq_cst); }

    private:
        Notifier& n_;
    };
    bool block(std::uint32_t seen, Deadline deadline);  // false on timeout; KeyboardInterrupt
    std::atomic<std::uint32_t> seq_{0};
    std::atomic<int> waiting_{0};
};

}  // namespace mp::detail
