// QueueHandle: creating a queue, put and get over the ring and the chunk stream, passing the
// handle to another process.
#include <bit>
#include <new>

#include "queue_core.hpp"
#include "sys/memfd.hpp"
#include "sys/robust_mutex.hpp"
#include "trace_hook.hpp"

namespace mp::detail {
namespace {

std::uint32_t class_for(std::size_t bytes) {
    const std::size_t c = std::bit_ceil(std::max(bytes, kChunk));
    return static_cast<std::uint32_t>(std::countr_zero(c) - std::countr_zero(kChunk));
}

}  // namespace

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
    const bool ring_is_bound =
        q.maxsize() > 0 && q.cap() >= static_cast<std::uint64_t>(q.maxsize());

    // A big item goes to an extent of its own, filled before taking the producers' mutex.
    std::uint64_t ext = 0;
    struct ExtentGuard {
        QueueCore& q;
        std::uint64_t& off;
        ~ExtentGuard() {
            if (off) q.release(off);
        }
    } guard{q, ext};
    trace::WaitSpan wait("queue put");
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
                wait.begin();
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
    trace::WaitSpan wait("queue get");
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
        wait.begin();
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
