// The storage of the chunk stream: 64 KiB chunks and (64 KiB << k) extents, bump allocated from
// the sparse memfd and recycled through per-size free lists under alloc_mu; freed pages beyond
// kKeepResident go back to the kernel.
#include <cerrno>
#include <system_error>

#include "queue_core.hpp"
#include "sys/hole.hpp"
#include "sys/robust_mutex.hpp"

namespace mp::detail {

std::uint64_t QueueCore::alloc(std::uint32_t cls) {
    if (cls >= static_cast<std::uint32_t>(kClasses))
        throw std::system_error(ENOMEM, std::generic_category(),
                                "multiproc: Queue: item too large for the queue's storage");
    const std::uint64_t size = std::uint64_t{kChunk} << cls;
    Shared& s = sh();
    std::uint64_t off = 0;
    {
        (void)sys::robust_mutex_lock(&s.alloc_mu,
                                     Deadline::never());  // every step below is one store
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

}  // namespace mp::detail
