// The chunk stream: records appended under prod_mu and taken under cons_mu, each side publishing
// through an intent record that the next holder redoes when the robust mutex reports a death.
#include <cstring>
#include <exception>

#include "queue_core.hpp"
#include "sys/robust_mutex.hpp"

namespace mp::detail {

using sys::Locked;

namespace {

// What one side (producers: tail and puts; consumers: head and gets) publishes under its
// mutex, with its intent record.
struct Side {
    std::uint64_t& pend_pos;
    std::uint64_t& pend_count;
    std::atomic<std::uint32_t>& pend_valid;
    std::atomic<std::uint64_t>& count;
    std::atomic<std::uint64_t>& pos;
};

Side producers(Shared& s) noexcept {
    return {s.pend_tail, s.pend_puts, s.pend_valid, s.puts, s.tail};
}
Side consumers(Shared& s) noexcept {
    return {s.pend_head, s.pend_gets, s.pend_valid_c, s.gets, s.head};
}

// The intent record first, then the two stores, then the record cleared: a holder killed
// anywhere in between leaves either nothing or a record its successor redoes (see redo).
void publish(const Side& d, std::uint64_t pos, std::uint64_t count) noexcept {
    d.pend_pos = pos;
    d.pend_count = count;
    d.pend_valid.store(1, std::memory_order_release);
    d.count.store(count, std::memory_order_release);
    d.pos.store(pos, std::memory_order_release);
    d.pend_valid.store(0, std::memory_order_relaxed);
}

// Storing values (not adding) makes redoing a publication that completed harmless.
void redo(const Side& d) noexcept {
    if (d.pend_valid.load(std::memory_order_relaxed)) {
        d.count.store(d.pend_count, std::memory_order_relaxed);
        d.pos.store(d.pend_pos, std::memory_order_release);
        d.pend_valid.store(0, std::memory_order_relaxed);
    }
}

}  // namespace

void QueueCore::repair_producer() noexcept { redo(producers(sh())); }

void QueueCore::repair_consumer() noexcept { redo(consumers(sh())); }

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
    publish(producers(s), pos + rec, s.puts.load(std::memory_order_relaxed) + 1);
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
            return wait_until(
                       s.room, [&] { return used() < max; }, deadline, false)
                       ? 2
                       : 0;
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
            if (s.tail.load(std::memory_order_acquire) == pos)
                s.locked.store(0, std::memory_order_seq_cst);
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
        publish(consumers(s), pos + kRecHeader + align8(r.len),
                s.gets.load(std::memory_order_relaxed) + 1);
        u.unlock();
        if (ext) release(ext);
        if (maxsize_ > 0) wake(s.room);
        if (err) std::rethrow_exception(err);
        return 1;
    }
}

}  // namespace mp::detail
