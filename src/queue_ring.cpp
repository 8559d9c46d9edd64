// The ring of small items: 128-byte slots claimed and taken by compare-and-swap on one state
// word each (see queue_core.hpp for the protocol and what a killed producer leaves).
#include <cstring>
#include <exception>

#include "owner_tid.hpp"
#include "queue_core.hpp"
#include "tsan_ignore.hpp"

namespace mp::detail {
namespace {

// A slot word any producer or consumer could have written: a known state, a writer's TID
// exactly while writing, and (for a ring of 2^k slots) a position that maps to its own slot.
void check_slot_word(std::uint64_t w, std::uint64_t mask) {
    const std::uint64_t st = slot_state(w);
    if (st > kReady || (st == kWriting) != (slot_tid(w) != 0) || ((w >> 24) & mask) != 0)
        corrupt("slot state");
}

// Positions a get or put may walk past in one call before the ring is called corrupt. The
// hints lag the claimed positions by at most one (a process claims a position only at the
// hint, after moving it there), so a walk longer than a lap of the ring plus what concurrent
// calls can claim meanwhile means slot words that no process wrote.
constexpr std::uint64_t kWalkSlack = 4096;

// Moves a ring hint from p to p + 1 unless another process moved it first; returns where the
// hint is now.
std::uint64_t advance_hint(std::atomic<std::uint64_t>& hint, std::uint64_t p) noexcept {
    std::uint64_t e = p;
    return hint.compare_exchange_strong(e, p + 1, std::memory_order_seq_cst,
                                        std::memory_order_acquire)
               ? p + 1
               : e;
}

}  // namespace

// Claims the slot of the next position (CAS free -> writing, with our TID), fills it and
// publishes it (ready). A producer killed between claim and publish leaves "writing" and its
// TID: a consumer waiting on that position finds the TID dead and skips the position (the
// item was never put). full: the slot of position p still holds the previous lap's item (its
// state word in w, for the caller to wait on).
RingPut QueueCore::ring_put(std::size_t n, QueueFill fill, const void* ctx, std::uint64_t& p,
                            std::uint64_t& w) {
    Shared& s = sh();
    p = s.enq.load(std::memory_order_acquire);
    for (std::uint64_t walked = 0;; ++walked) {
        if (walked > cap_ + kWalkSlack) corrupt("ring positions");
        std::uint64_t idx;
        Slot& sl = slot(p, idx);
        std::uint64_t cur = slot_word(p, idx, 0, kFree);
        if (sl.state.compare_exchange_strong(cur, slot_word(p, idx, my_tid(), kWriting),
                                             std::memory_order_acquire,
                                             std::memory_order_acquire)) {
            std::uint64_t e = p;
            s.enq.compare_exchange_strong(e, p + 1, std::memory_order_seq_cst,
                                          std::memory_order_relaxed);
            sl.len = static_cast<std::uint32_t>(n);
            fill(ctx, sl.payload, n);
            sl.state.exchange(slot_word(p, idx, 0, kReady), std::memory_order_seq_cst);
            wake_after_rmw(s.items);
            return RingPut::done;
        }
        check_slot_word(cur, mask_);
        const std::int64_t d = pos_diff(slot_pos(cur, idx), p);
        // The slot of a position the hint has reached was claimed for that position, or is
        // the previous lap's, not consumed yet (full); never older, never free for an old lap.
        if (d < -static_cast<std::int64_t>(cap_) || (d < 0 && slot_state(cur) == kFree))
            corrupt("slot position");
        if (d >= 0) {
            // Position p is claimed already (perhaps consumed too): move the hint on.
            p = advance_hint(s.enq, p);
            continue;
        }
        const std::uint64_t now = s.enq.load(std::memory_order_acquire);
        if (now != p) {
            p = now;
            continue;
        }
        w = cur;
        return RingPut::full;
    }
}

// The item at the next full position, read optimistically: its bytes are copied out and
// decoded first, and only then is the slot taken (CAS ready -> free for the next lap). A
// consumer killed before that CAS leaves the item in place for the next get(); one that loses
// the race to another consumer drops its decoded copy and moves on. `p` and `w` tell the
// caller which position and slot word it should wait on.
RingGet QueueCore::ring_get(QueueRead read, void* ctx, std::uint64_t& p, std::uint64_t& w) {
    Shared& s = sh();
    p = s.deq.load(std::memory_order_acquire);
    for (std::uint64_t walked = 0;; ++walked) {
        if (walked > cap_ + kWalkSlack) corrupt("ring positions");
        std::uint64_t idx;
        Slot& sl = slot(p, idx);
        w = sl.state.load(std::memory_order_acquire);
        check_slot_word(w, mask_);
        const std::uint64_t ready = slot_word(p, idx, 0, kReady);
        if (w == ready) {
            std::size_t len;
            alignas(16) std::byte buf[kSlotPayload];
            {
                // A producer may be refilling this slot for the next lap meanwhile; the copy
                // counts only if the state word below is still `ready`.
                const TsanIgnoreReads optimistic;
                len = sl.len;
                std::memcpy(buf, sl.payload, std::min(len, kSlotPayload));
            }
            std::atomic_thread_fence(std::memory_order_acquire);
            if (sl.state.load(std::memory_order_relaxed) != ready) continue;
            if (len > kSlotPayload) corrupt("slot length");
            std::exception_ptr err;
            try {
                read(ctx, buf, len);
            } catch (...) {
                err = std::current_exception();  // the item is consumed all the same (Python)
            }
            std::uint64_t cur = ready;
            if (sl.state.compare_exchange_strong(cur, slot_word(p + cap_, idx, 0, kFree),
                                                 std::memory_order_seq_cst,
                                                 std::memory_order_acquire)) {
                std::uint64_t e = p;
                s.deq.compare_exchange_strong(e, p + 1, std::memory_order_seq_cst,
                                              std::memory_order_relaxed);
                if (maxsize_ > 0) wake_after_rmw(s.room);
                if (err) std::rethrow_exception(err);
                return RingGet::got;
            }
            w = cur;
        }
        const std::int64_t d = pos_diff(slot_pos(w, idx), p);
        if (d == 0) return slot_state(w) == kWriting ? RingGet::writing : RingGet::empty;
        if (d > 0) {
            // Position p was taken already: move the hint on.
            p = advance_hint(s.deq, p);
            continue;
        }
        // Slot positions only grow, and they were at or past p when the hint was read at p: an
        // older position at an unchanged hint is no process's writing.
        const std::uint64_t now = s.deq.load(std::memory_order_acquire);
        if (now == p) corrupt("slot position");
        p = now;
    }
}

// No position at or after the consumers' hint is claimed (positions are claimed in order).
bool QueueCore::ring_empty() const noexcept {
    const Shared& s = *sh_;
    const std::uint64_t p = s.deq.load(std::memory_order_seq_cst);
    std::uint64_t idx;
    const Slot& sl = slot(p, idx);
    return sl.state.load(std::memory_order_seq_cst) == slot_word(p, idx, 0, kFree);
}

std::uint64_t QueueCore::ring_items() const noexcept {
    const Shared& s = *sh_;
    const std::uint64_t d = s.deq.load(std::memory_order_acquire);
    const std::uint64_t e = s.enq.load(std::memory_order_acquire);
    return e > d ? e - d : 0;
}

// The producer that claimed position p (slot word w, "writing") is dead: the position is
// skipped, as if consumed (its item was never put).
void QueueCore::skip_if_dead(std::uint64_t p, std::uint64_t w) noexcept {
    if (thread_alive(slot_tid(w))) return;
    Shared& s = sh();
    std::uint64_t idx;
    Slot& sl = slot(p, idx);
    if (!sl.state.compare_exchange_strong(w, slot_word(p + cap_, idx, 0, kFree),
                                          std::memory_order_seq_cst, std::memory_order_relaxed))
        return;
    s.skipped.fetch_add(1, std::memory_order_seq_cst);
    std::uint64_t e = p;
    s.deq.compare_exchange_strong(e, p + 1, std::memory_order_seq_cst, std::memory_order_relaxed);
    if (maxsize_ > 0) wake_after_rmw(s.room);
}

}  // namespace mp::detail
