// Queues in shared memory (see include/multiproc/queues.hpp for the guarantees).
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
#include "multiproc/queues.hpp"

#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <system_error>

#include "owner_tid.hpp"
#include "queue_layout.hpp"
#include "sys/cpu_relax.hpp"
#include "sys/futex.hpp"
#include "sys/hole.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"
#include "sys/robust_mutex.hpp"
#include "sys/syscall.hpp"
#include "tsan_ignore.hpp"

namespace mp::detail {
using namespace queue_layout;
using sys::Locked;
namespace {


void wake(WaitWord& w) noexcept {
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

[[noreturn]] void corrupt(const char* what) {
    throw ProcessError(std::string("multiproc: queue memory is corrupt (") + what + ")");
}

// One read of a field any process may rewrite at any time: what is checked is what is used.
template <class T>
T read_once(const T& v) noexcept {
    return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

// The read-only part of the header as it must be for a queue of `maxsize` (what the creator
// wrote), or nullptr.
const char* header_error(std::uint64_t magic, std::int64_t maxsize, std::uint64_t span,
                         std::uint64_t ring_off, std::uint64_t ring_cap, std::uint64_t ring_mask) {
    if (magic != kMagic || span != kSpan) return "header";
    if (maxsize < 0) return "maxsize";
    const std::uint64_t cap =
        maxsize > 0 ? std::min(static_cast<std::uint64_t>(maxsize), kRingMax) : kRingUnbounded;
    if (ring_cap != cap) return "ring capacity";
    if (ring_off != kChunk) return "ring offset";
    if (ring_mask != (std::has_single_bit(cap) ? cap - 1 : 0)) return "ring mask";
    return nullptr;
}

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

enum class RingPut { done, full, locked };
enum class RingGet { got, empty, writing };

}  // namespace

class QueueCore {
public:
    // Checks the read-only part of the header (mp::ProcessError when corrupt) and keeps this
    // copy of it: ring geometry and bound are never read from shared memory again.
    QueueCore(UniqueFd fd, sys::Mapping map) : fd_(std::move(fd)), map_(std::move(map)) {
        sh_ = reinterpret_cast<Shared*>(map_.data());
        const Shared& s = *sh_;
        maxsize_ = read_once(s.maxsize);
        cap_ = read_once(s.ring_cap);
        mask_ = read_once(s.ring_mask);
        if (const char* e = header_error(read_once(s.magic), maxsize_, read_once(s.span),
                                         read_once(s.ring_off), cap_, mask_))
            corrupt(e);
        ring_end_ = kChunk + ((cap_ * kSlot + kChunk - 1) & ~std::uint64_t{kChunk - 1});
    }

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
        return cls < static_cast<std::uint32_t>(kClasses) && off % kChunk == 0 && off >= ring_end_ &&
               off <= kSpan && (std::uint64_t{kChunk} << cls) <= kSpan - off;
    }
    ChunkHeader* chunk(std::uint64_t off) const { return chunk_checked(off, 0); }
    // A record position of the chunk stream: 8-byte aligned, past its chunk's header, with room
    // for a record header before the chunk's end.
    std::uint64_t record_checked(std::uint64_t pos) const {
        const std::uint64_t in = pos & (kChunk - 1);
        if (pos % 8 != 0 || in < kChunkHeader || in + kRecHeader > kChunk ||
            !chunk_ok(pos - in, 0))
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

namespace {

constexpr std::int64_t kSpinMinNs = 1'000;
constexpr std::int64_t kSpinMaxNs = 50'000;

std::uint32_t class_for(std::size_t bytes) {
    const std::size_t c = std::bit_ceil(std::max(bytes, kChunk));
    return static_cast<std::uint32_t>(std::countr_zero(c) - std::countr_zero(kChunk));
}

}  // namespace

std::uint64_t QueueCore::alloc(std::uint32_t cls) {
    if (cls >= static_cast<std::uint32_t>(kClasses))
        throw std::system_error(ENOMEM, std::generic_category(),
                                "multiproc: Queue: item too large for the queue's storage");
    const std::uint64_t size = std::uint64_t{kChunk} << cls;
    Shared& s = sh();
    std::uint64_t off = 0;
    {
        (void)sys::robust_mutex_lock(&s.alloc_mu, Deadline::never());  // every step below is one store
        sys::RobustUnlock u(&s.alloc_mu);
        if ((off = read_once(s.free_head[cls])) != 0) {
            ChunkHeader* c = chunk_checked(off, cls);
            s.free_head[cls] = c->free_next;
            if (!c->punched) s.resident_free -= std::min<std::uint64_t>(s.resident_free, c->used);
        } else {
            off = read_once(s.bump);
            if (off % kChunk != 0 || off < ring_end_ || off > kSpan) corrupt("allocation mark");
            if (size > kSpan - off)
                throw std::system_error(ENOMEM, std::generic_category(),
                                        "multiproc: Queue: 64 GiB of items waiting in one queue");
            s.bump = off + size;
            chunk_checked(off, cls)->used = kPage;
        }
    }
    ChunkHeader* c = chunk_checked(off, cls);
    c->next.store(0, std::memory_order_relaxed);
    c->free_next = 0;
    c->cls = cls;
    c->punched = 0;
    return off;
}

void QueueCore::release(std::uint64_t off) noexcept {
    Shared& s = sh();
    auto* c = reinterpret_cast<ChunkHeader*>(map_.data() + off);  // off: checked by the caller
    const std::uint32_t cls = read_once(c->cls);
    // Storage whose class a peer rewrote is left out of the free lists (lost, not reused).
    if (!chunk_ok(off, cls)) return;
    const std::uint64_t size = std::uint64_t{kChunk} << cls;
    const std::uint64_t used = std::min(size, (c->used + kPage - 1) & ~std::uint64_t{kPage - 1});
    // Freed storage stays resident up to kKeepResident (reused without page faults); beyond
    // that its pages go back to the kernel now, before it becomes reachable from a free list.
    bool punch = __atomic_load_n(&s.resident_free, __ATOMIC_RELAXED) + used > kKeepResident;
    if (punch && used > kPage) {
        try {
            sys::punch_hole(fd_.get(), off + kPage, used - kPage);
        } catch (...) {
            punch = false;  // keeping the pages is merely wasteful
        }
    }
    c->punched = punch ? 1 : 0;
    c->used = punch ? kPage : used;
    (void)sys::robust_mutex_lock(&s.alloc_mu, Deadline::never());
    sys::RobustUnlock u(&s.alloc_mu);
    c->free_next = s.free_head[cls];
    if (!punch) s.resident_free += used;
    s.free_head[cls] = off;
}

void QueueCore::repair_producer() noexcept {
    Shared& s = sh();
    if (s.pend_valid.load(std::memory_order_relaxed)) {
        s.puts.store(s.pend_puts, std::memory_order_relaxed);
        s.tail.store(s.pend_tail, std::memory_order_release);
        s.pend_valid.store(0, std::memory_order_relaxed);
    }
}

void QueueCore::repair_consumer() noexcept {
    Shared& s = sh();
    if (s.pend_valid_c.load(std::memory_order_relaxed)) {
        s.gets.store(s.pend_gets, std::memory_order_relaxed);
        s.head.store(s.pend_head, std::memory_order_release);
        s.pend_valid_c.store(0, std::memory_order_relaxed);
    }
}

// Under prod_mu. Writes one record at the tail (moving to the next chunk when it does not fit,
// keeping room for the skip record) and publishes it.
void QueueCore::append(std::uint32_t kind, std::size_t len, QueueFill fill, const void* ctx,
                       std::uint64_t ext_off, std::uint64_t ext_len) {
    Shared& s = sh();
    std::uint64_t pos = record_checked(s.tail.load(std::memory_order_relaxed));
    const std::uint64_t base = pos & ~std::uint64_t{kChunk - 1};
    const std::size_t rec = kRecHeader + align8(len);
    if (pos + rec + kRecHeader > base + kChunk) {
        ChunkHeader* c = chunk(base);
        std::uint64_t next = c->next.load(std::memory_order_relaxed);
        // A producer that died here may have linked the next chunk already: reuse it.
        if (next == 0) {
            next = alloc(0);
            chunk(next)->used = kChunk;
            c->next.store(next, std::memory_order_relaxed);
        } else if (!chunk_ok(next, 0)) {
            corrupt("chunk link");
        }
        auto* skip = reinterpret_cast<Record*>(at(pos));
        skip->len = 0;
        skip->kind = kSkip;
        pos = next + kChunkHeader;
    }
    auto* r = reinterpret_cast<Record*>(at(pos));
    r->len = static_cast<std::uint32_t>(len);
    r->kind = kind;
    std::byte* payload = at(pos + kRecHeader);
    if (kind == kInline) {
        fill(ctx, payload, len);
    } else {
        std::memcpy(payload, &ext_off, sizeof ext_off);
        std::memcpy(payload + 8, &ext_len, sizeof ext_len);
    }
    const std::uint64_t new_tail = pos + rec;
    const std::uint64_t puts = s.puts.load(std::memory_order_relaxed) + 1;
    s.pend_tail = new_tail;
    s.pend_puts = puts;
    s.pend_valid.store(1, std::memory_order_release);
    s.puts.store(puts, std::memory_order_relaxed);
    s.tail.store(new_tail, std::memory_order_release);
    s.pend_valid.store(0, std::memory_order_relaxed);
}

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
                                             std::memory_order_acquire, std::memory_order_acquire)) {
            std::uint64_t e = p;
            s.enq.compare_exchange_strong(e, p + 1, std::memory_order_seq_cst, std::memory_order_relaxed);
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
            std::uint64_t e = p;
            p = s.enq.compare_exchange_strong(e, p + 1, std::memory_order_seq_cst,
                                              std::memory_order_acquire)
                    ? p + 1
                    : e;
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
                                                 std::memory_order_seq_cst, std::memory_order_acquire)) {
                std::uint64_t e = p;
                s.deq.compare_exchange_strong(e, p + 1, std::memory_order_seq_cst, std::memory_order_relaxed);
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
            std::uint64_t e = p;
            p = s.deq.compare_exchange_strong(e, p + 1, std::memory_order_seq_cst,
                                              std::memory_order_acquire)
                    ? p + 1
                    : e;
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

// The chunk stream: items too big for a slot, and small items while it holds any (or when an
// unbounded queue's ring is full). 1: appended; 0: timed out; 2: try the ring again (room came
// in a bounded queue).
int QueueCore::chunk_put(std::uint32_t kind, std::size_t n, QueueFill fill, const void* ctx,
                         std::uint64_t& ext, Deadline deadline) {
    Shared& s = sh();
    const Locked l = sys::robust_mutex_lock(&s.prod_mu, deadline);
    if (l == Locked::timed_out) return 0;
    sys::RobustUnlock u(&s.prod_mu);
    if (l == Locked::owner_died) repair_producer();
    if (maxsize_ > 0) {
        const auto max = static_cast<std::uint64_t>(maxsize_);
        auto used = [&] {
            return ring_items() + s.puts.load(std::memory_order_seq_cst) -
                   s.gets.load(std::memory_order_seq_cst);
        };
        if (used() >= max) {
            u.unlock();
            return wait_until(s.room, [&] { return used() < max; }, deadline, false) ? 2 : 0;
        }
    }
    if (s.locked.load(std::memory_order_relaxed) == 0) s.locked.store(1, std::memory_order_seq_cst);
    if (kind == kInline) {
        append(kInline, n, fill, ctx, 0, 0);
    } else {
        append(kExtent, 16, nullptr, nullptr, ext, n);
        ext = 0;  // the queue owns it now
    }
    u.unlock();
    wake(s.items);
    return 1;
}

// Takes the chunk stream's head item under cons_mu, unless the ring holds items (a producer's
// ring items are older than its chunk items). 1: got; 0: the stream is empty; 2: try the ring
// again; -1: timed out waiting for the mutex. When the stream is empty and no producer is
// appending, small items go back to the ring.
int QueueCore::chunk_get(QueueRead read, void* ctx, Deadline deadline) {
    Shared& s = sh();
    const Locked l = sys::robust_mutex_lock(&s.cons_mu, deadline);
    if (l == Locked::timed_out) return -1;
    sys::RobustUnlock u(&s.cons_mu);
    if (l == Locked::owner_died) repair_consumer();
    // A chunk begins with a record, never with a skip (see append): two skips in a row are no
    // producer's writing, and a cycle of chunks would otherwise be walked forever.
    for (int skips = 0;; ++skips) {
        if (skips > 1) corrupt("chunk links");
        const std::uint64_t pos = s.head.load(std::memory_order_relaxed);
        if (pos == s.tail.load(std::memory_order_acquire)) {
            const Locked p = sys::robust_mutex_try_lock(&s.prod_mu);
            if (p == Locked::timed_out) return 0;
            sys::RobustUnlock pu(&s.prod_mu);
            if (p == Locked::owner_died) repair_producer();
            if (s.tail.load(std::memory_order_acquire) == pos) s.locked.store(0, std::memory_order_seq_cst);
            return 2;
        }
        Record r;
        std::memcpy(&r, at(record_checked(pos)), sizeof r);  // read once
        const std::uint64_t base = pos & ~std::uint64_t{kChunk - 1};
        if (r.kind == kSkip) {
            const std::uint64_t next = chunk(base)->next.load(std::memory_order_relaxed);
            if (next == 0 || !chunk_ok(next, 0)) corrupt("chunk link");
            s.head.store(next + kChunkHeader, std::memory_order_release);
            release(base);
            continue;
        }
        if (!ring_empty()) return 2;
        std::uint64_t ext = 0;
        const std::byte* src;
        std::size_t n;
        if (pos + kRecHeader + align8(r.len) > base + kChunk) corrupt("record length");
        if (r.kind == kInline) {
            src = at(pos + kRecHeader);
            n = r.len;
        } else if (r.kind == kExtent) {
            std::uint64_t len;
            if (r.len != 16) corrupt("record length");
            std::memcpy(&ext, at(pos + kRecHeader), sizeof ext);
            std::memcpy(&len, at(pos + kRecHeader + 8), sizeof len);
            // The extent's class, read once: the item must lie inside the extent.
            const std::uint32_t cls = read_once(chunk(ext)->cls);
            if (!chunk_ok(ext, cls) || len > (std::uint64_t{kChunk} << cls) - kChunkHeader)
                corrupt("item outside its storage");
            src = at(ext + kChunkHeader);
            n = static_cast<std::size_t>(len);
        } else {
            corrupt("record kind");
        }
        std::exception_ptr err;
        try {
            read(ctx, src, n);
        } catch (...) {
            err = std::current_exception();  // the item is consumed all the same (Python)
        }
        const std::uint64_t new_head = pos + kRecHeader + align8(r.len);
        const std::uint64_t gets = s.gets.load(std::memory_order_relaxed) + 1;
        s.pend_head = new_head;
        s.pend_gets = gets;
        s.pend_valid_c.store(1, std::memory_order_release);
        s.gets.store(gets, std::memory_order_release);
        s.head.store(new_head, std::memory_order_release);
        s.pend_valid_c.store(0, std::memory_order_relaxed);
        u.unlock();
        if (ext) release(ext);
        if (maxsize_ > 0) wake(s.room);
        if (err) std::rethrow_exception(err);
        return 1;
    }
}

// ---- QueueHandle ---------------------------------------------------------------------------

QueueHandle::QueueHandle(std::int64_t maxsize) {
    const std::uint64_t cap =
        maxsize > 0 ? std::min(static_cast<std::uint64_t>(maxsize), kRingMax) : kRingUnbounded;
    const std::uint64_t ring_bytes = (cap * kSlot + kChunk - 1) & ~std::uint64_t{kChunk - 1};
    UniqueFd fd = sys::make_memfd("multiproc-queue", kSpan);
    sys::Mapping map = sys::Mapping::map_shared(fd.get(), kSpan);
    auto* s = new (map.data()) Shared{};
    s->magic = kMagic;
    s->maxsize = maxsize > 0 ? maxsize : 0;
    s->span = kSpan;
    s->ring_off = kChunk;
    s->ring_cap = cap;
    s->ring_mask = std::has_single_bit(cap) ? cap - 1 : 0;
    sys::robust_mutex_init(&s->prod_mu);
    sys::robust_mutex_init(&s->cons_mu);
    sys::robust_mutex_init(&s->alloc_mu);
    s->bump = kChunk + ring_bytes;
    core_ = std::make_shared<QueueCore>(std::move(fd), std::move(map));
    const std::uint64_t first = core_->alloc(0);
    core_->chunk(first)->used = kChunk;
    s->tail.store(first + kChunkHeader, std::memory_order_relaxed);
    s->head.store(first + kChunkHeader, std::memory_order_release);
}

namespace {

QueueCore& attached(const std::shared_ptr<QueueCore>& core) {
    if (!core) throw UsageError("multiproc: use of an empty (moved-from or unloaded) queue");
    return *core;
}

}  // namespace

QueueCore& QueueHandle::core() const {
    QueueCore& q = attached(core_);
    q.recheck();
    return q;
}

bool QueueHandle::put(std::size_t n, QueueFill fill, const void* ctx, Deadline deadline) {
    QueueCore& q = core();
    if (q.closed.load(std::memory_order_relaxed))
        throw UsageError("multiproc: put() on a closed queue");
    Shared& s = q.sh();
    const bool small = n <= kSlotPayload;
    const bool ring_is_bound = q.maxsize() > 0 && q.cap() >= static_cast<std::uint64_t>(q.maxsize());

    // A big item goes to an extent of its own, filled before taking the producers' mutex.
    std::uint64_t ext = 0;
    struct ExtentGuard {
        QueueCore& q;
        std::uint64_t& off;
        ~ExtentGuard() {
            if (off) q.release(off);
        }
    } guard{q, ext};
    if (n > kInlineMax) {
        ext = q.alloc(class_for(kChunkHeader + n));
        ChunkHeader* c = q.chunk(ext);
        c->used = std::max<std::uint64_t>(c->used, kChunkHeader + n);
        fill(ctx, q.at(ext + kChunkHeader), n);
    }

    for (;;) {
        if (small && s.locked.load(std::memory_order_acquire) == 0) {
            std::uint64_t p, w;
            if (q.ring_put(n, fill, ctx, p, w) == RingPut::done) return true;
            if (ring_is_bound) {
                // The ring holds maxsize items: wait for a consumer to free the slot of the
                // next position (watching only that slot keeps off the consumers' lines).
                std::uint64_t idx;
                const Slot& sl = q.slot(p, idx);
                if (!q.wait_until(
                        s.room,
                        [&] {
                            return sl.state.load(std::memory_order_seq_cst) != w ||
                                   s.locked.load(std::memory_order_seq_cst) != 0;
                        },
                        deadline, false))
                    return false;
                continue;
            }
        }
        const int r = q.chunk_put(n > kInlineMax ? kExtent : kInline, n, fill, ctx, ext, deadline);
        if (r == 1) return true;
        if (r == 0) return false;
    }
}

bool QueueHandle::get(QueueRead read, void* ctx, Deadline deadline) {
    QueueCore& q = core();
    if (q.closed.load(std::memory_order_relaxed))
        throw UsageError("multiproc: get() on a closed queue");
    Shared& s = q.sh();
    std::uint64_t last_p = 0, last_w = ~std::uint64_t{0};
    for (;;) {
        std::uint64_t p, w;
        const RingGet r = q.ring_get(read, ctx, p, w);
        if (r == RingGet::got) return true;
        if (r == RingGet::writing) {
            // Seen twice in a row, after a sliced sleep: look whether its producer died.
            if (p == last_p && w == last_w) q.skip_if_dead(p, w);
            last_p = p;
            last_w = w;
        }
        const std::uint32_t locked = s.locked.load(std::memory_order_acquire);
        const std::uint64_t tail = s.tail.load(std::memory_order_acquire);
        if (r == RingGet::empty && locked != 0) {
            const int c = q.chunk_get(read, ctx, deadline);
            if (c == 1) return true;
            if (c == -1) return false;
            if (c == 2) continue;
        }
        std::uint64_t idx;
        const Slot& sl = q.slot(p, idx);
        if (!q.wait_until(
                s.items,
                [&] {
                    return sl.state.load(std::memory_order_seq_cst) != w ||
                           s.locked.load(std::memory_order_seq_cst) != locked ||
                           s.tail.load(std::memory_order_seq_cst) != tail;
                },
                deadline, r == RingGet::writing))
            return false;
    }
}

std::size_t QueueHandle::qsize() const {
    const QueueCore& q = core();
    const Shared& s = q.sh();
    const std::uint64_t gets = s.gets.load(std::memory_order_acquire);
    const std::uint64_t puts = s.puts.load(std::memory_order_acquire);
    return static_cast<std::size_t>(q.ring_items() + (puts > gets ? puts - gets : 0));
}

std::int64_t QueueHandle::maxsize() const { return core().maxsize(); }

void QueueHandle::close() noexcept {
    if (core_) core_->closed.store(true, std::memory_order_relaxed);
}

bool QueueHandle::closed() const noexcept {
    return core_ && core_->closed.load(std::memory_order_relaxed);
}

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

void QueueHandle::save(Encoder& e) const {
    // Passing the handle on reads nothing of the queue's memory (the receiver checks it).
    e.add_fd(attached(core_).fd());
    e.write_size(kMagic);
}

void QueueHandle::load(Decoder& d) {
    UniqueFd fd = d.take_fd();
    if (d.read_size() != kMagic || sys::file_size(fd.get()) != kSpan)
        throw DecodeError("multiproc: corrupt message: descriptor is not a queue");
    sys::Mapping map = sys::Mapping::map_shared(fd.get(), kSpan);
    if (reinterpret_cast<const Shared*>(map.data())->magic != kMagic)
        throw DecodeError("multiproc: corrupt message: descriptor is not a queue");
    core_ = std::make_shared<QueueCore>(std::move(fd), std::move(map));
}

std::vector<std::byte>& queue_scratch() {
    thread_local std::vector<std::byte> buf;
    return buf;
}

}  // namespace mp::detail
