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

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <exception>
#include <new>
#include <system_error>

#include "owner_tid.hpp"
#include "sys/futex.hpp"
#include "sys/hole.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"
#include "sys/syscall.hpp"
#include "tsan_ignore.hpp"

namespace mp::detail {
namespace {

constexpr std::uint64_t kMagic = 0x3165756575717075ULL;  // "upqueue1"
constexpr std::size_t kSpan = std::size_t{1} << 36;      // 64 GiB of address space
constexpr std::size_t kChunk = std::size_t{1} << 16;     // 64 KiB
constexpr std::size_t kChunkHeader = 64;
constexpr std::size_t kInlineMax = kChunk / 4;
constexpr std::size_t kRecHeader = 8;
constexpr int kClasses = 24;                          // 64 KiB << 0 .. 64 KiB << 23 (512 GiB)
constexpr std::size_t kKeepResident = std::size_t{32} << 20;  // freed storage kept for reuse
constexpr std::size_t kPage = 4096;
constexpr std::uint32_t kInline = 1, kExtent = 2, kSkip = 3;

// The ring of small items (see the file comment).
constexpr std::size_t kSlot = 128;
constexpr std::size_t kSlotPayload = kSlot - 16;
constexpr std::uint64_t kRingUnbounded = 8192;         // slots of an unbounded queue (1 MiB)
constexpr std::uint64_t kRingMax = std::uint64_t{1} << 16;  // bounded: min(maxsize, this)
constexpr std::uint64_t kFree = 0, kWriting = 1, kReady = 2;
constexpr std::uint64_t kPosMask = (std::uint64_t{1} << 40) - 1;

constexpr std::size_t align8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

struct ChunkHeader {
    std::atomic<std::uint64_t> next;  // the next chunk of the record stream (0: none yet)
    std::uint64_t free_next;          // link in a free list
    std::uint32_t cls;
    std::uint32_t punched;            // pages given back while on the free list
    std::uint64_t used;               // bytes written since allocated (what is resident)
};
static_assert(sizeof(ChunkHeader) <= kChunkHeader);

// A slot's state word: [position - slot index : 40][writer's TID : 22][state : 2]. Storing the
// position relative to the slot's index makes zero-filled memory mean "free for its first
// lap", so a new queue touches no slot page before it is used.
struct Slot {
    std::atomic<std::uint64_t> state;
    std::uint32_t len;
    std::uint32_t reserved;
    std::byte payload[kSlotPayload];
};
static_assert(sizeof(Slot) == kSlot);

struct Record {
    std::uint32_t len;
    std::uint32_t kind;
};
static_assert(sizeof(Record) == kRecHeader);

// A waiter parks on `seq` after raising `sleepers`; the other side, after publishing, clears
// `sleepers` and bumps `seq` only if it was raised. A waiter that dies leaves `sleepers`
// raised: that costs one needless wake, after which it is clear again.
struct WaitWord {
    alignas(64) std::atomic<std::uint32_t> seq;
    std::atomic<std::uint32_t> sleepers;
};

struct Shared {
    // Read-only after creation.
    std::uint64_t magic;
    std::int64_t maxsize;
    std::uint64_t span;

    std::uint64_t ring_off;
    std::uint64_t ring_cap;
    std::uint64_t ring_mask;  // ring_cap - 1 when a power of two, else 0

    // The ring's next free and next full positions: hints any process may advance once the
    // slot at the position has been claimed (positions are claimed in order).
    alignas(128) std::atomic<std::uint64_t> enq;
    alignas(128) std::atomic<std::uint64_t> deq;
    // Nonzero while the chunk stream may hold items: small items then go there too (FIFO).
    alignas(128) std::atomic<std::uint32_t> locked;
    std::atomic<std::uint64_t> skipped;  // ring positions of producers that died in put()

    // Producer side (written under prod_mu).
    alignas(128) pthread_mutex_t prod_mu;
    std::atomic<std::uint64_t> tail;
    std::atomic<std::uint64_t> puts;
    std::uint64_t pend_tail;
    std::uint64_t pend_puts;
    std::atomic<std::uint32_t> pend_valid;

    // Consumer side (written under cons_mu).
    alignas(128) pthread_mutex_t cons_mu;
    std::atomic<std::uint64_t> head;
    std::atomic<std::uint64_t> gets;
    std::uint64_t pend_head;
    std::uint64_t pend_gets;
    std::atomic<std::uint32_t> pend_valid_c;

    // Storage (under alloc_mu).
    alignas(128) pthread_mutex_t alloc_mu;
    std::uint64_t bump;
    std::uint64_t resident_free;
    std::uint64_t free_head[kClasses];

    // JoinableQueue.
    alignas(128) std::atomic<std::uint64_t> tasks_done;

    alignas(128) WaitWord items;  // consumers wait for the tail to move
    alignas(128) WaitWord room;   // producers of a bounded queue wait for the gets to move
    alignas(128) WaitWord joined; // join() waits for tasks_done to reach puts
};
static_assert(sizeof(Shared) <= kChunk);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

void init_mutex(pthread_mutex_t* m) {
    pthread_mutexattr_t a;
    ::pthread_mutexattr_init(&a);
    ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    const int r = ::pthread_mutex_init(m, &a);
    ::pthread_mutexattr_destroy(&a);
    if (r) throw_os_error("pthread_mutex_init", r);
}

enum class Locked { yes, timed_out, owner_died };

// A short spin on trylock first: the sections are a few hundred nanoseconds, far shorter than
// a futex sleep and wake.
Locked lock_mutex(pthread_mutex_t* m, Deadline deadline) {
    int r = EBUSY;
    for (int i = 0; i < 200 && r == EBUSY; ++i) {
        r = ::pthread_mutex_trylock(m);
        if (r == EBUSY) cpu_relax();
    }
    if (r == EBUSY) {
        if (deadline.is_forever()) {
            r = ::pthread_mutex_lock(m);
        } else if (deadline.expired()) {
            return Locked::timed_out;
        } else {
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                deadline.at()->time_since_epoch())
                                .count();
            timespec ts{static_cast<time_t>(ns / 1'000'000'000),
                        static_cast<long>(ns % 1'000'000'000)};
            r = ::pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
        }
    }
    switch (r) {
        case 0: return Locked::yes;
        case EBUSY:
        case ETIMEDOUT: return Locked::timed_out;
        case EOWNERDEAD: ::pthread_mutex_consistent(m); return Locked::owner_died;
        default: throw_os_error("pthread_mutex_lock", r);
    }
}

struct Unlock {
    pthread_mutex_t* m;
    ~Unlock() {
        if (m) ::pthread_mutex_unlock(m);
    }
};

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

enum class RingPut { done, full, locked };
enum class RingGet { got, empty, writing };

}  // namespace

class QueueCore {
public:
    QueueCore(UniqueFd fd, sys::Mapping map) : fd_(std::move(fd)), map_(std::move(map)) {
        sh_ = reinterpret_cast<Shared*>(map_.data());
    }

    Shared& sh() const noexcept { return *sh_; }
    int fd() const noexcept { return fd_.get(); }
    std::byte* at(std::uint64_t off) const {
        if (off >= kSpan) throw ProcessError("multiproc: corrupt queue: offset outside its storage");
        return map_.data() + off;
    }
    ChunkHeader* chunk(std::uint64_t off) const { return reinterpret_cast<ChunkHeader*>(at(off)); }

    std::uint64_t alloc(std::uint32_t cls);
    void release(std::uint64_t off) noexcept;
    void repair_producer() noexcept;
    void repair_consumer() noexcept;
    void append(std::uint32_t kind, std::size_t len, QueueFill fill, const void* ctx,
                std::uint64_t ext_off, std::uint64_t ext_len);
    template <class Changed>
    bool wait_until(WaitWord& w, Changed changed, Deadline deadline, bool sliced);

    Slot& slot(std::uint64_t pos, std::uint64_t& index) const noexcept {
        const Shared& s = *sh_;
        index = s.ring_mask ? (pos & s.ring_mask) : (pos % s.ring_cap);
        return reinterpret_cast<Slot*>(map_.data() + s.ring_off)[index];
    }
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
        (void)lock_mutex(&s.alloc_mu, Deadline::never());  // every step below is one store
        Unlock u{&s.alloc_mu};
        if ((off = s.free_head[cls]) != 0) {
            ChunkHeader* c = chunk(off);
            s.free_head[cls] = c->free_next;
            if (!c->punched) s.resident_free -= std::min<std::uint64_t>(s.resident_free, c->used);
        } else {
            if (s.bump + size > kSpan)
                throw std::system_error(ENOMEM, std::generic_category(),
                                        "multiproc: Queue: 64 GiB of items waiting in one queue");
            off = s.bump;
            s.bump += size;
            chunk(off)->used = kPage;
        }
    }
    ChunkHeader* c = chunk(off);
    c->next.store(0, std::memory_order_relaxed);
    c->free_next = 0;
    c->cls = cls;
    c->punched = 0;
    return off;
}

void QueueCore::release(std::uint64_t off) noexcept {
    Shared& s = sh();
    ChunkHeader* c = chunk(off);
    const std::uint64_t size = std::uint64_t{kChunk} << c->cls;
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
    (void)lock_mutex(&s.alloc_mu, Deadline::never());
    Unlock u{&s.alloc_mu};
    c->free_next = s.free_head[c->cls];
    if (!punch) s.resident_free += used;
    s.free_head[c->cls] = off;
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
    std::uint64_t pos = s.tail.load(std::memory_order_relaxed);
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
        cpu_relax();
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
    for (;;) {
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
        if (pos_diff(slot_pos(cur, idx), p) >= 0) {
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
    for (;;) {
        std::uint64_t idx;
        Slot& sl = slot(p, idx);
        w = sl.state.load(std::memory_order_acquire);
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
            if (len > kSlotPayload) throw ProcessError("multiproc: corrupt queue: slot length");
            std::exception_ptr err;
            try {
                read(ctx, buf, len);
            } catch (...) {
                err = std::current_exception();  // the item is consumed all the same (Python)
            }
            std::uint64_t cur = ready;
            if (sl.state.compare_exchange_strong(cur, slot_word(p + s.ring_cap, idx, 0, kFree),
                                                 std::memory_order_seq_cst, std::memory_order_acquire)) {
                std::uint64_t e = p;
                s.deq.compare_exchange_strong(e, p + 1, std::memory_order_seq_cst, std::memory_order_relaxed);
                if (s.maxsize > 0) wake_after_rmw(s.room);
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
        const std::uint64_t now = s.deq.load(std::memory_order_acquire);
        if (now == p) return RingGet::empty;
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
    if (!sl.state.compare_exchange_strong(w, slot_word(p + s.ring_cap, idx, 0, kFree),
                                          std::memory_order_seq_cst, std::memory_order_relaxed))
        return;
    s.skipped.fetch_add(1, std::memory_order_seq_cst);
    std::uint64_t e = p;
    s.deq.compare_exchange_strong(e, p + 1, std::memory_order_seq_cst, std::memory_order_relaxed);
    if (s.maxsize > 0) wake_after_rmw(s.room);
}

// The chunk stream: items too big for a slot, and small items while it holds any (or when an
// unbounded queue's ring is full). 1: appended; 0: timed out; 2: try the ring again (room came
// in a bounded queue).
int QueueCore::chunk_put(std::uint32_t kind, std::size_t n, QueueFill fill, const void* ctx,
                         std::uint64_t& ext, Deadline deadline) {
    Shared& s = sh();
    const Locked l = lock_mutex(&s.prod_mu, deadline);
    if (l == Locked::timed_out) return 0;
    Unlock u{&s.prod_mu};
    if (l == Locked::owner_died) repair_producer();
    if (s.maxsize > 0) {
        const auto max = static_cast<std::uint64_t>(s.maxsize);
        auto used = [&] {
            return ring_items() + s.puts.load(std::memory_order_seq_cst) -
                   s.gets.load(std::memory_order_seq_cst);
        };
        if (used() >= max) {
            u.m = nullptr;
            ::pthread_mutex_unlock(&s.prod_mu);
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
    u.m = nullptr;
    ::pthread_mutex_unlock(&s.prod_mu);
    wake(s.items);
    return 1;
}

// Takes the chunk stream's head item under cons_mu, unless the ring holds items (a producer's
// ring items are older than its chunk items). 1: got; 0: the stream is empty; 2: try the ring
// again; -1: timed out waiting for the mutex. When the stream is empty and no producer is
// appending, small items go back to the ring.
int QueueCore::chunk_get(QueueRead read, void* ctx, Deadline deadline) {
    Shared& s = sh();
    const Locked l = lock_mutex(&s.cons_mu, deadline);
    if (l == Locked::timed_out) return -1;
    Unlock u{&s.cons_mu};
    if (l == Locked::owner_died) repair_consumer();
    for (;;) {
        const std::uint64_t pos = s.head.load(std::memory_order_relaxed);
        if (pos == s.tail.load(std::memory_order_acquire)) {
            const int r = ::pthread_mutex_trylock(&s.prod_mu);
            if (r != 0 && r != EOWNERDEAD) return 0;
            if (r == EOWNERDEAD) {
                ::pthread_mutex_consistent(&s.prod_mu);
                repair_producer();
            }
            if (s.tail.load(std::memory_order_acquire) == pos) s.locked.store(0, std::memory_order_seq_cst);
            ::pthread_mutex_unlock(&s.prod_mu);
            return 2;
        }
        const Record r = *reinterpret_cast<const Record*>(at(pos));
        if (r.kind == kSkip) {
            const std::uint64_t base = pos & ~std::uint64_t{kChunk - 1};
            const std::uint64_t next = chunk(base)->next.load(std::memory_order_relaxed);
            if (next == 0) throw ProcessError("multiproc: corrupt queue: chunk without a successor");
            s.head.store(next + kChunkHeader, std::memory_order_release);
            release(base);
            continue;
        }
        if (!ring_empty()) return 2;
        std::uint64_t ext = 0;
        const std::byte* src;
        std::size_t n;
        if (r.kind == kInline) {
            src = at(pos + kRecHeader);
            n = r.len;
        } else if (r.kind == kExtent) {
            std::uint64_t len;
            std::memcpy(&ext, at(pos + kRecHeader), sizeof ext);
            std::memcpy(&len, at(pos + kRecHeader + 8), sizeof len);
            if (ext + kChunkHeader + len > kSpan)
                throw ProcessError("multiproc: corrupt queue: item outside its storage");
            src = at(ext + kChunkHeader);
            n = static_cast<std::size_t>(len);
        } else {
            throw ProcessError("multiproc: corrupt queue: unknown record kind");
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
        u.m = nullptr;
        ::pthread_mutex_unlock(&s.cons_mu);
        if (ext) release(ext);
        if (s.maxsize > 0) wake(s.room);
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
    init_mutex(&s->prod_mu);
    init_mutex(&s->cons_mu);
    init_mutex(&s->alloc_mu);
    s->bump = kChunk + ring_bytes;
    core_ = std::make_shared<QueueCore>(std::move(fd), std::move(map));
    const std::uint64_t first = core_->alloc(0);
    core_->chunk(first)->used = kChunk;
    s->tail.store(first + kChunkHeader, std::memory_order_relaxed);
    s->head.store(first + kChunkHeader, std::memory_order_release);
}

QueueCore& QueueHandle::core() const {
    if (!core_) throw UsageError("multiproc: use of an empty (moved-from or unloaded) queue");
    return *core_;
}

bool QueueHandle::put(std::size_t n, QueueFill fill, const void* ctx, Deadline deadline) {
    QueueCore& q = core();
    if (q.closed.load(std::memory_order_relaxed))
        throw UsageError("multiproc: put() on a closed queue");
    Shared& s = q.sh();
    const bool small = n <= kSlotPayload;
    const bool ring_is_bound = s.maxsize > 0 && s.ring_cap >= static_cast<std::uint64_t>(s.maxsize);

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

std::int64_t QueueHandle::maxsize() const { return core().sh().maxsize; }

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
    QueueCore& q = core();
    e.add_fd(q.fd());
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
