// JoinableQueue's counting: task_done() against the items ever put, join() waiting for them.
#include "queue_core.hpp"

namespace mp::detail {

namespace {

// Items ever put: the ring's positions (less those skipped) and the chunk stream's records.
std::uint64_t total_puts(const Shared& s) {
    return s.enq.load(std::memory_order_seq_cst) - s.skipped.load(std::memory_order_seq_cst) +
           s.puts.load(std::memory_order_seq_cst);
}

}  // namespace

void QueueHandle::task_done() {
    Shared& s = core().sh();
    std::uint64_t done = s.tasks_done.load(std::memory_order_relaxed);
    for (;;) {
        if (done >= total_puts(s))
            throw UsageError("multiproc: JoinableQueue.task_done() called more times than items "
                             "were put");
        if (s.tasks_done.compare_exchange_weak(done, done + 1, std::memory_order_acq_rel,
                                               std::memory_order_relaxed))
            break;
    }
    wake(s.joined);
}

void QueueHandle::join() {
    Shared& s = core().sh();
    for (;;) {
        const std::uint64_t done = s.tasks_done.load(std::memory_order_acquire);
        if (done >= total_puts(s)) return;
        const std::uint32_t seq = s.joined.seq.load(std::memory_order_acquire);
        s.joined.sleepers.store(1, std::memory_order_seq_cst);
        if (s.tasks_done.load(std::memory_order_seq_cst) >= total_puts(s)) return;
        (void)sys::futex_wait(s.joined.seq, seq, Deadline::never(), sys::Interruptible::yes);
    }
}

}  // namespace mp::detail
