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

#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <exception>
#include <new>
#include <system_error>

#include "sys/futex.hpp"
#include "sys/hole.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"

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

constexpr std::size_t align8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

struct ChunkHeader {
    std::atomic<std::uint64_t> next;  // the next chunk of the record stream (0: none yet)
    std::uint64_t free_next;          // link in a free list
    std::uint32_t cls;
    std::uint32_t punched;            // pages given back while on the free list
    std::uint64_t used;               // bytes written since allocated (what is resident)
};
static_assert(sizeof(ChunkHeader) <= kChunkHeader);

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
    bool wait_change(WaitWord& w, const std::atomic<std::uint64_t>& word, std::uint64_t seen,
                     Deadline deadline);

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

// Waits until `word` differs from `seen` (true) or the deadline passes (false): a spin whose
// length adapts to how often spinning was enough, then a futex sleep.
bool QueueCore::wait_change(WaitWord& w, const std::atomic<std::uint64_t>& word,
                            std::uint64_t seen, Deadline deadline) {
    using clock = std::chrono::steady_clock;
    if (!deadline.is_forever() && deadline.expired()) return word.load(std::memory_order_acquire) != seen;
    const std::int64_t budget = spin_ns_.load(std::memory_order_relaxed);
    const auto spin_end = clock::now() + std::chrono::nanoseconds(budget);
    for (unsigned i = 1;; ++i) {
        if (word.load(std::memory_order_acquire) != seen) {
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
        if (word.load(std::memory_order_seq_cst) != seen) return true;
        if (!sys::futex_wait(w.seq, s, deadline)) return word.load(std::memory_order_acquire) != seen;
        if (word.load(std::memory_order_acquire) != seen) return true;
    }
}

// ---- QueueHandle ---------------------------------------------------------------------------

QueueHandle::QueueHandle(std::int64_t maxsize) {
    UniqueFd fd = sys::make_memfd("multiproc-queue", kSpan);
    sys::Mapping map = sys::Mapping::map_shared(fd.get(), kSpan);
    auto* s = new (map.data()) Shared{};
    s->magic = kMagic;
    s->maxsize = maxsize > 0 ? maxsize : 0;
    s->span = kSpan;
    init_mutex(&s->prod_mu);
    init_mutex(&s->cons_mu);
    init_mutex(&s->alloc_mu);
    s->bump = kChunk;
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

    // A big item goes to an extent of its own, filled before taking the producers' mutex.
    std::uint64_t ext = 0;
    struct ExtentGuard {
        QueueCore& q;
        std::uint64_t& off;
        ~ExtentGuard() {
            if (off) q.release(off);
        }
    } guard{q, ext};
    const bool inline_item = n <= kInlineMax;
    if (!inline_item) {
        ext = q.alloc(class_for(kChunkHeader + n));
        ChunkHeader* c = q.chunk(ext);
        c->used = std::max<std::uint64_t>(c->used, kChunkHeader + n);
        fill(ctx, q.at(ext + kChunkHeader), n);
    }

    for (;;) {
        const Locked l = lock_mutex(&s.prod_mu, deadline);
        if (l == Locked::timed_out) return false;
        Unlock u{&s.prod_mu};
        if (l == Locked::owner_died) q.repair_producer();
        if (s.maxsize > 0) {
            const std::uint64_t gets = s.gets.load(std::memory_order_acquire);
            if (s.puts.load(std::memory_order_relaxed) - gets >= static_cast<std::uint64_t>(s.maxsize)) {
                u.m = nullptr;
                ::pthread_mutex_unlock(&s.prod_mu);
                if (!q.wait_change(s.room, s.gets, gets, deadline)) return false;
                continue;
            }
        }
        if (inline_item) {
            q.append(kInline, n, fill, ctx, 0, 0);
        } else {
            q.append(kExtent, 16, nullptr, nullptr, ext, n);
            ext = 0;  // the queue owns it now
        }
        break;
    }
    wake(s.items);
    return true;
}

bool QueueHandle::get(QueueRead read, void* ctx, Deadline deadline) {
    QueueCore& q = core();
    if (q.closed.load(std::memory_order_relaxed))
        throw UsageError("multiproc: get() on a closed queue");
    Shared& s = q.sh();
    for (;;) {
        const Locked l = lock_mutex(&s.cons_mu, deadline);
        if (l == Locked::timed_out) return false;
        Unlock u{&s.cons_mu};
        if (l == Locked::owner_died) q.repair_consumer();
        std::uint64_t pos;
        for (;;) {
            pos = s.head.load(std::memory_order_relaxed);
            if (pos == s.tail.load(std::memory_order_acquire)) break;
            const Record r = *reinterpret_cast<const Record*>(q.at(pos));
            if (r.kind == kSkip) {
                const std::uint64_t base = pos & ~std::uint64_t{kChunk - 1};
                const std::uint64_t next = q.chunk(base)->next.load(std::memory_order_relaxed);
                if (next == 0) throw ProcessError("multiproc: corrupt queue: chunk without a successor");
                s.head.store(next + kChunkHeader, std::memory_order_release);
                q.release(base);
                continue;
            }
            std::uint64_t ext = 0;
            const std::byte* src;
            std::size_t n;
            if (r.kind == kInline) {
                src = q.at(pos + kRecHeader);
                n = r.len;
            } else if (r.kind == kExtent) {
                std::uint64_t len;
                std::memcpy(&ext, q.at(pos + kRecHeader), sizeof ext);
                std::memcpy(&len, q.at(pos + kRecHeader + 8), sizeof len);
                if (ext + kChunkHeader + len > kSpan)
                    throw ProcessError("multiproc: corrupt queue: item outside its storage");
                src = q.at(ext + kChunkHeader);
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
            if (ext) q.release(ext);
            if (s.maxsize > 0) wake(s.room);
            if (err) std::rethrow_exception(err);
            return true;
        }
        u.m = nullptr;
        ::pthread_mutex_unlock(&s.cons_mu);
        if (!q.wait_change(s.items, s.tail, pos, deadline)) return false;
    }
}

std::size_t QueueHandle::qsize() const {
    const Shared& s = core().sh();
    const std::uint64_t gets = s.gets.load(std::memory_order_acquire);
    const std::uint64_t puts = s.puts.load(std::memory_order_acquire);
    return puts > gets ? static_cast<std::size_t>(puts - gets) : 0;
}

std::int64_t QueueHandle::maxsize() const { return core().sh().maxsize; }

void QueueHandle::close() noexcept {
    if (core_) core_->closed.store(true, std::memory_order_relaxed);
}

bool QueueHandle::closed() const noexcept {
    return core_ && core_->closed.load(std::memory_order_relaxed);
}

void QueueHandle::task_done() {
    Shared& s = core().sh();
    std::uint64_t done = s.tasks_done.load(std::memory_order_relaxed);
    for (;;) {
        if (done >= s.puts.load(std::memory_order_acquire))
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
        if (done >= s.puts.load(std::memory_order_acquire)) return;
        const std::uint32_t seq = s.joined.seq.load(std::memory_order_acquire);
        s.joined.sleepers.store(1, std::memory_order_seq_cst);
        if (s.tasks_done.load(std::memory_order_seq_cst) >= s.puts.load(std::memory_order_seq_cst))
            return;
        (void)sys::futex_wait(s.joined.seq, seq, Deadline::never());
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
