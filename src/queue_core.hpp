// Queues in shared memory (see include/multiproc/queues.hpp for the guarantees): QueueCore,
// this process's view of one queue, and what its parts share. The parts, a file each:
// queue_core.cpp attaches to the memory, queue_storage.cpp allocates it, queue_ring.cpp and
// queue_chunk_stream.cpp move the items, queue_handle.cpp and queue_join.cpp are the API.
//
// One memfd per queue, sized once to a large sparse span (nothing is allocated until written)
// and mapped by every process that holds the queue, so storage added later by any process is
// already reachable by all of them, including children spawned before it was added.
//
//   memfd (64 GiB sparse)
//   +-----------+------------+------------+-----+------------------------+----
//   | Shared    | chunk      | chunk      | ... | extent (one big item)  | ...
//   | header    | 64 KiB     | 64 KiB     |     | 64 KiB << k            |
//   +-----------+------------+------------+-----+------------------------+----
//   0           64 KiB       (every chunk and extent is 64 KiB aligned; bump allocated,
//                             recycled through per-size free lists)
//
//   chunk: [ChunkHeader 64 B][record][record]...[skip record]     records are 8-byte aligned
//   record: [u32 len][u32 kind][payload, padded to 8]
//           kind inline:   the item's bytes (len <= 16 KiB)
//           kind extent:   {u64 offset, u64 len} of an extent holding the item after its header
//           kind skip:     the rest of this chunk is unused; go on at ChunkHeader::next
//
// Small items (encoded in at most 112 bytes) normally bypass all of that: a ring of 128-byte
// slots (after the header; maxsize slots for a bounded queue, up to 65536; 8192 when unbounded)
// in the style of Vyukov's bounded MPMC queue, with one state word per slot holding the
// position it is for, its state (free / writing / ready) and the writer's TID:
//
//   put: CAS slot(enq).state free(p) -> writing(p, tid); enq p -> p+1; copy the item into the
//        slot; state = ready(p); wake consumers only if one is asleep.
//   get: read slot(deq) while ready(p); copy its bytes out; decode; then CAS ready(p) ->
//        free(p + capacity) (taking it); deq p -> p+1.
//
// enq and deq are hints that any process may move on once the slot at the position is
// claimed, so positions are claimed strictly in order and a process killed between its two
// CASes leaves nothing stuck. A producer killed between claim and publish leaves writing(p,
// tid): a consumer waiting on p sleeps in slices, finds the TID dead and skips p (the item was
// never put). A consumer decodes before it takes the slot, so one killed while decoding leaves
// the item at the head; a consumer that loses the race for a slot drops its decoded copy.
//
// Ring and chunk stream keep FIFO per producer through `locked`: an item that does not fit a
// slot (or finds an unbounded queue's ring full) goes to the chunk stream and raises `locked`,
// and while it is raised small items follow it there. Consumers take from the ring first and
// from the chunk stream only when the slot at deq is free (no position at or after deq is
// claimed, so everything a producer put in the ring before its chunk item is gone); the
// consumer that finds the chunk stream empty while holding both mutexes lowers `locked`.
//
// Positions (head, tail) are byte offsets into the memfd; every record lies before the tail,
// so "empty" is head == tail. Producers serialise on one robust mutex, consumers on another:
// a producer and a consumer never contend, and the shared words each side writes sit on cache
// lines of their own. Items above 16 KiB are copied into their extent before the producer
// takes its mutex, so producers of big items copy in parallel.
//
// Owner death: each side publishes with an intent record ("pending": the position and count
// it is about to store) written before the two stores and cleared after. The next holder of
// the mutex, told of the death by the robust mutex, redoes the stores from the intent record;
// storing values (not adding) makes the repair idempotent. A consumer decodes under its mutex
// and advances the head only afterwards, so a consumer killed while reading leaves the item at
// the head for the next one.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "multiproc/queues.hpp"
#include "queue_layout.hpp"
#include "sys/cpu_relax.hpp"
#include "sys/futex.hpp"
#include "sys/mapping.hpp"

namespace mp::detail {
// The queue's own files only: its layout names read as the protocol above writes them.
using namespace queue_layout;

// Wakes the waiters of `w` after a publication by plain stores (hence the fence).
inline void wake(WaitWord& w) noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (w.sleepers.load(std::memory_order_relaxed) != 0 &&
        w.sleepers.exchange(0, std::memory_order_acq_rel) != 0) {
        w.seq.fetch_add(1, std::memory_order_release);
        sys::futex_wake_all(w.seq);
    }
}

inline std::uint64_t slot_word(std::uint64_t pos, std::uint64_t index, std::uint64_t tid,
                               std::uint64_t st) noexcept {
    return (((pos - index) & kPosMask) << 24) | ((tid & 0x3fffff) << 2) | st;
}
inline std::uint64_t slot_pos(std::uint64_t word, std::uint64_t index) noexcept {
    return ((word >> 24) + index) & kPosMask;
}
inline std::uint32_t slot_tid(std::uint64_t word) noexcept {
    return static_cast<std::uint32_t>((word >> 2) & 0x3fffff);
}
inline std::uint64_t slot_state(std::uint64_t word) noexcept { return word & 3; }
// Signed distance a - b of two 40-bit positions.
inline std::int64_t pos_diff(std::uint64_t a, std::uint64_t b) noexcept {
    return static_cast<std::int64_t>(((a - b) & kPosMask) << 24) >> 24;
}

// Wakes the waiters of `w`. The caller has just published with a sequentially consistent
// read-modify-write, which orders this load after it (the waiter raises `sleepers`, then
// re-reads what it waits for, both sequentially consistent).
inline void wake_after_rmw(WaitWord& w) noexcept {
    if (w.sleepers.load(std::memory_order_seq_cst) != 0 &&
        w.sleepers.exchange(0, std::memory_order_acq_rel) != 0) {
        w.seq.fetch_add(1, std::memory_order_release);
        sys::futex_wake_all(w.seq);
    }
}

/// Throws mp::ProcessError: the queue's shared memory holds what no process wrote.
[[noreturn]] void corrupt(const char* what);

// One read of a field any process may rewrite at any time: what is checked is what is used.
template <class T>
T read_once(const T& v) noexcept {
    return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

enum class RingPut { done, full, locked };
enum class RingGet { got, empty, writing };

inline constexpr std::int64_t kSpinMinNs = 1'000;
inline constexpr std::int64_t kSpinMaxNs = 50'000;

class QueueCore {
public:
    // Checks the read-only part of the header (mp::ProcessError when corrupt) and keeps this
    // copy of it: ring geometry and bound are never read from shared memory again.
    QueueCore(UniqueFd fd, sys::Mapping map);

    Shared& sh() const noexcept { return *sh_; }
    int fd() const noexcept { return fd_.get(); }
    std::int64_t maxsize() const noexcept { return maxsize_; }
    std::uint64_t cap() const noexcept { return cap_; }
    // Every operation first compares the shared header with the copy attached: a peer that
    // rewrote it has corrupted the queue (the copy keeps this process safe; the error says so).
    void recheck() const {
        const Shared& s = *sh_;
        if (read_once(s.magic) != kMagic || read_once(s.maxsize) != maxsize_ ||
            read_once(s.span) != kSpan || read_once(s.ring_off) != kChunk ||
            read_once(s.ring_cap) != cap_ || read_once(s.ring_mask) != mask_)
            corrupt("header rewritten");
    }
    std::byte* at(std::uint64_t off) const {
        if (off >= kSpan) corrupt("offset outside its storage");
        return map_.data() + off;
    }
    // The storage at `off` of class `cls` (a chunk or an extent), after checking that all of it
    // lies in the storage area (past the ring, inside the span, 64 KiB aligned).
    ChunkHeader* chunk_checked(std::uint64_t off, std::uint32_t cls) const {
        if (!chunk_ok(off, cls)) corrupt("storage offset");
        return reinterpret_cast<ChunkHeader*>(map_.data() + off);
    }
    bool chunk_ok(std::uint64_t off, std::uint32_t cls) const noexcept {
        return cls < static_cast<std::uint32_t>(kClasses) && off % kChunk == 0 &&
               off >= ring_end_ && off <= kSpan && (std::uint64_t{kChunk} << cls) <= kSpan - off;
    }
    ChunkHeader* chunk(std::uint64_t off) const { return chunk_checked(off, 0); }
    // A record position of the chunk stream: 8-byte aligned, past its chunk's header, with room
    // for a record header before the chunk's end.
    std::uint64_t record_checked(std::uint64_t pos) const {
        const std::uint64_t in = pos & (kChunk - 1);
        if (pos % 8 != 0 || in < kChunkHeader || in + kRecHeader > kChunk || !chunk_ok(pos - in, 0))
            corrupt("record position");
        return pos;
    }

    std::uint64_t alloc(std::uint32_t cls);
    void release(std::uint64_t off) noexcept;
    void repair_producer() noexcept;
    void repair_consumer() noexcept;
    void append(std::uint32_t kind, std::size_t len, QueueFill fill, const void* ctx,
                std::uint64_t ext_off, std::uint64_t ext_len);
    template <class Changed>
    bool wait_until(WaitWord& w, Changed changed, Deadline deadline, bool sliced);

    Slot& slot(std::uint64_t pos, std::uint64_t& index) const noexcept {
        index = mask_ ? (pos & mask_) : (pos % cap_);
        return reinterpret_cast<Slot*>(map_.data() + kChunk)[index];
    }
    std::uint64_t mask() const noexcept { return mask_; }
    RingPut ring_put(std::size_t n, QueueFill fill, const void* ctx, std::uint64_t& pos,
                     std::uint64_t& word);
    RingGet ring_get(QueueRead read, void* ctx, std::uint64_t& pos, std::uint64_t& word);
    bool ring_empty() const noexcept;
    std::uint64_t ring_items() const noexcept;
    int chunk_put(std::uint32_t kind, std::size_t n, QueueFill fill, const void* ctx,
                  std::uint64_t& ext, Deadline deadline);
    int chunk_get(QueueRead read, void* ctx, Deadline deadline);
    void skip_if_dead(std::uint64_t pos, std::uint64_t word) noexcept;

    std::atomic<bool> closed{false};

private:
    UniqueFd fd_;
    sys::Mapping map_;
    Shared* sh_ = nullptr;
    std::int64_t maxsize_ = 0;
    std::uint64_t cap_ = 1, mask_ = 0, ring_end_ = 0;
    std::atomic<std::int64_t> spin_ns_{20'000};
};

// Waits until changed() (true) or the deadline passes (false): a spin whose length adapts to
// how often spinning was enough, then a futex sleep. `sliced`: the wait is on a position a producer claimed and
// has not published; the sleep then lasts at most kSlice so that the caller can look whether
// that producer is still alive (true is returned after a slice, as a spurious wake-up).
template <class Changed>
bool QueueCore::wait_until(WaitWord& w, Changed changed, Deadline deadline, bool sliced) {
    using clock = std::chrono::steady_clock;
    constexpr auto kSlice = std::chrono::milliseconds(10);
    if (!deadline.is_forever() && deadline.expired()) return changed();
    const std::int64_t budget = spin_ns_.load(std::memory_order_relaxed);
    const auto spin_end = clock::now() + std::chrono::nanoseconds(budget);
    for (unsigned i = 1;; ++i) {
        if (changed()) {
            spin_ns_.store(std::min(kSpinMaxNs, budget * 2), std::memory_order_relaxed);
            return true;
        }
        sys::cpu_relax();
        if ((i & 63) == 0) {
            const auto now = clock::now();
            if (now >= spin_end) break;
            if (!deadline.is_forever() && now >= *deadline.at()) return false;
        }
    }
    spin_ns_.store(std::max(kSpinMinNs, budget / 2), std::memory_order_relaxed);
    for (;;) {
        const std::uint32_t s = w.seq.load(std::memory_order_acquire);
        w.sleepers.store(1, std::memory_order_seq_cst);
        if (changed()) return true;
        Deadline until = deadline;
        if (sliced) {
            const auto slice_end = clock::now() + kSlice;
            if (deadline.is_forever() || slice_end < *deadline.at()) until = Deadline(slice_end);
        }
        // Interruptible: get and put wait here before claiming anything (nothing to undo).
        const bool woken = sys::futex_wait(w.seq, s, until, sys::Interruptible::yes);
        if (changed()) return true;
        if (!woken) return sliced && !(deadline.is_forever() ? false : deadline.expired());
    }
}

}  // namespace mp::detail
