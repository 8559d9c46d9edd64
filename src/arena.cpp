// Shared arenas (see include/multiproc/detail/arena.hpp for the guarantees).
//
//   arena (memfd, mapped MAP_SHARED, page aligned in every process)
//   +--------------------+----------------+----------------+---- ... ----+
//   | ArenaHeader        | block          | block          |             |
//   | magic, id, size,   | BlockHeader    | BlockHeader    |             |
//   | bump, free lists   | (16 bytes)     | user data      |             |
//   +--------------------+----------------+----------------+---- ... ----+
//   0                    kHeaderBytes      bump ->
//
// Offsets, never pointers, are stored in shared memory: each process maps the arena at its
// own address. Free-list heads pack (tag << 32 | offset) so a compare-and-swap cannot succeed
// on a head that was popped and pushed back meanwhile (ABA).
#include "multiproc/detail/arena.hpp"

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#include "sys/mapping.hpp"
#include "sys/memfd.hpp"
#include "sys/process.hpp"
#include "sys/random.hpp"
#include "sys/syscall.hpp"

namespace mp::detail {
namespace {

constexpr std::uint64_t kArenaMagic = 0x31616e657261706dULL;  // "mparena1"
constexpr std::uint32_t kBlockMagic = 0x6b6c626dU;            // "mblk"
constexpr std::size_t kHeaderBytes = 512;
constexpr std::size_t kArenaBytes = std::size_t{1} << 20;
constexpr std::size_t kMinClass = 32;
constexpr int kClasses = 14;  // 32 B .. 256 KiB = kArenaBytes / 4
constexpr std::uint32_t kDedicated = 0xffffffffU;
constexpr std::size_t kPage = 4096;

struct ArenaId {
    std::uint64_t a = 0, b = 0;
    bool operator==(const ArenaId&) const = default;
};

struct ArenaHeader {
    std::uint64_t magic;
    ArenaId id;
    std::uint64_t size;
    std::uint32_t dedicated;
    std::atomic<std::uint32_t> bump;
    std::atomic<std::uint64_t> free_head[kClasses];
};
static_assert(sizeof(ArenaHeader) <= kHeaderBytes);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

struct BlockHeader {
    std::uint32_t cls;
    std::atomic<std::uint32_t> refs;
    std::atomic<std::uint32_t> next;
    std::uint32_t magic;
};
static_assert(sizeof(BlockHeader) == 16);

std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) & ~(a - 1); }

ArenaId random_id() {
    ArenaId id;
    std::uint64_t buf[2];
    sys::random_bytes(buf, sizeof buf);
    id.a = buf[0];
    id.b = buf[1];
    return id;
}

}  // namespace

/// One arena as mapped by this process.
struct ArenaMap {
    sys::Mapping map;
    UniqueFd fd;
    ArenaId id;

    ArenaHeader* hdr() const noexcept { return reinterpret_cast<ArenaHeader*>(map.data()); }
    BlockHeader* block(std::uint32_t off) const noexcept {
        return reinterpret_cast<BlockHeader*>(map.data() + off);
    }

    // Returns the offset of a block of class `cls`, or 0 when the arena is full.
    std::uint32_t pop_or_bump(int cls) {
        auto& head = hdr()->free_head[cls];
        std::uint64_t h = head.load(std::memory_order_acquire);
        while (auto off = static_cast<std::uint32_t>(h)) {
            // The block may be popped and reused by another process while we read its link;
            // then the tag has changed and the compare-and-swap below fails.
            const std::uint32_t nxt = block(off)->next.load(std::memory_order_relaxed);
            const std::uint64_t nh = (((h >> 32) + 1) << 32) | nxt;
            if (head.compare_exchange_weak(h, nh, std::memory_order_acq_rel,
                                           std::memory_order_acquire))
                return off;
        }
        const auto csize = static_cast<std::uint32_t>(kMinClass << cls);
        std::uint32_t cur = hdr()->bump.load(std::memory_order_relaxed);
        do {
            if (std::uint64_t{cur} + csize > hdr()->size) return 0;
        } while (!hdr()->bump.compare_exchange_weak(cur, cur + csize, std::memory_order_relaxed));
        return cur;
    }

    void push_free(std::uint32_t off) {
        BlockHeader* b = block(off);
        auto& head = hdr()->free_head[b->cls];
        std::uint64_t h = head.load(std::memory_order_relaxed);
        for (;;) {
            b->next.store(static_cast<std::uint32_t>(h), std::memory_order_relaxed);
            const std::uint64_t nh = (((h >> 32) + 1) << 32) | off;
            if (head.compare_exchange_weak(h, nh, std::memory_order_release,
                                           std::memory_order_relaxed))
                return;
        }
    }
};

/// This process's reference to one block (one unit of the block's shared count).
struct BlockRef {
    std::shared_ptr<ArenaMap> arena;
    std::uint32_t off = 0;
    pid_t pid = 0;
    BlockRef* prev = nullptr;
    BlockRef* next = nullptr;

    BlockRef(std::shared_ptr<ArenaMap> a, std::uint32_t o);
    BlockRef(const BlockRef&) = delete;
    BlockRef& operator=(const BlockRef&) = delete;
    ~BlockRef();
};

namespace {

// Process-wide state. Never destroyed: handles in static objects may outlive any destructor.
struct Registry {
    std::mutex mu;
    std::vector<std::weak_ptr<ArenaMap>> arenas;  // every arena mapped here, by identity
    std::weak_ptr<ArenaMap> current;              // where small blocks are allocated
    BlockRef head;                                // circular list of live references

    Registry() : head(nullptr, 0) { head.prev = head.next = &head; }
};

void atfork_prepare();
void atfork_parent();
void atfork_child();

Registry& registry() {
    static Registry* r = [] {
        auto* reg = new Registry;
        sys::on_fork(atfork_prepare, atfork_parent, atfork_child);
        return reg;
    }();
    return *r;
}

void atfork_prepare() { registry().mu.lock(); }
void atfork_parent() { registry().mu.unlock(); }
// The child holds a copy of every handle of the parent: each of its references is a new
// unit of the shared count, owned by the child.
void atfork_child() {
    Registry& reg = registry();
    const pid_t me = sys::current_pid();
    for (BlockRef* r = reg.head.next; r != &reg.head; r = r->next) {
        if (r->pid == 0) continue;
        r->arena->block(r->off)->refs.fetch_add(1, std::memory_order_relaxed);
        r->pid = me;
    }
    reg.mu.unlock();
}

std::shared_ptr<ArenaMap> new_arena(std::size_t size, bool dedicated) {
    auto a = std::make_shared<ArenaMap>();
    a->fd = sys::make_memfd("multiproc-arena", size);
    a->map = sys::Mapping::map_shared(a->fd.get(), size);
    a->id = random_id();
    ArenaHeader* h = new (a->map.data()) ArenaHeader{};
    h->magic = kArenaMagic;
    h->id = a->id;
    h->size = size;
    h->dedicated = dedicated ? 1 : 0;
    h->bump.store(static_cast<std::uint32_t>(kHeaderBytes), std::memory_order_relaxed);
    for (auto& f : h->free_head) f.store(0, std::memory_order_relaxed);
    return a;
}

void remember(Registry& reg, const std::shared_ptr<ArenaMap>& a) {
    std::erase_if(reg.arenas, [](const std::weak_ptr<ArenaMap>& w) { return w.expired(); });
    reg.arenas.push_back(a);
}

}  // namespace

BlockRef::BlockRef(std::shared_ptr<ArenaMap> a, std::uint32_t o) : arena(std::move(a)), off(o) {
    if (!arena) return;  // the registry's list head
    pid = sys::current_pid();
    Registry& reg = registry();
    std::lock_guard lk(reg.mu);
    prev = &reg.head;
    next = reg.head.next;
    next->prev = this;
    reg.head.next = this;
}

BlockRef::~BlockRef() {
    if (!arena) return;
    {
        Registry& reg = registry();
        std::lock_guard lk(reg.mu);
        prev->next = next;
        next->prev = prev;
    }
    // A child made by a raw clone() (no pthread_atfork handlers) never took a unit of its
    // own; giving one back would free the block under the parent's feet.
    if (pid != sys::current_pid()) return;
    BlockHeader* b = arena->block(off);
    if (b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1 && b->cls != kDedicated)
        arena->push_free(off);
}

SharedBlock SharedBlock::allocate(std::size_t bytes, std::size_t align) {
    if (align < alignof(BlockHeader)) align = alignof(BlockHeader);
    if (!std::has_single_bit(align) || align > kPage)
        throw std::invalid_argument(
            "multiproc: shared memory alignment must be a power of two <= 4096");
    if (bytes == 0) bytes = 1;
    const std::size_t pad = align > sizeof(BlockHeader) ? align - sizeof(BlockHeader) : 0;
    if (bytes > (std::size_t{1} << 40)) throw std::bad_alloc();
    const std::size_t need = sizeof(BlockHeader) + pad + bytes;

    Registry& reg = registry();
    std::shared_ptr<ArenaMap> arena;
    std::uint32_t off = 0;
    std::uint32_t cls = kDedicated;
    if (need <= (kMinClass << (kClasses - 1))) {
        cls = static_cast<std::uint32_t>(std::countr_zero(std::bit_ceil(std::max(need, kMinClass)) /
                                                          kMinClass));
        std::lock_guard lk(reg.mu);
        arena = reg.current.lock();
        if (arena) off = arena->pop_or_bump(static_cast<int>(cls));
        if (!off) {
            arena = new_arena(kArenaBytes, false);
            remember(reg, arena);
            reg.current = arena;
            off = arena->pop_or_bump(static_cast<int>(cls));
        }
    } else {
        arena = new_arena(align_up(kHeaderBytes + need, kPage), true);
        off = static_cast<std::uint32_t>(kHeaderBytes);
        std::lock_guard lk(reg.mu);
        remember(reg, arena);
    }
    BlockHeader* b = arena->block(off);
    b->cls = cls;
    b->next.store(0, std::memory_order_relaxed);
    b->magic = kBlockMagic;
    b->refs.store(1, std::memory_order_release);
    const std::size_t data_off = align_up(off + sizeof(BlockHeader), align);
    std::byte* data = arena->map.data() + data_off;
    std::memset(data, 0, bytes);

    SharedBlock s;
    s.data_ = data;
    s.size_ = bytes;
    s.ref_ = std::make_shared<BlockRef>(std::move(arena), off);
    return s;
}

void SharedBlock::save(Encoder& e) const {
    if (!ref_) throw UsageError("multiproc: cannot send an empty shared-memory handle");
    const ArenaMap& a = *ref_->arena;
    e.add_fd(a.fd.get());
    e.write_bytes(&a.id, sizeof a.id);
    e.write_size(a.hdr()->size);
    e.write_size(ref_->off);
    e.write_size(static_cast<std::uint64_t>(static_cast<std::byte*>(data_) - a.map.data()));
    e.write_size(size_);
    // The unit in flight: the receiver adopts it, so the block outlives this handle even if
    // the sender drops it before the message is decoded.
    a.block(ref_->off)->refs.fetch_add(1, std::memory_order_relaxed);
}

void SharedBlock::load(Decoder& d) {
    UniqueFd fd = d.take_fd();
    ArenaId id;
    d.read_bytes(&id, sizeof id);
    const std::uint64_t arena_size = d.read_size();
    const std::uint64_t off = d.read_size();
    const std::uint64_t data_off = d.read_size();
    const std::uint64_t size = d.read_size();

    Registry& reg = registry();
    std::shared_ptr<ArenaMap> arena;
    {
        std::lock_guard lk(reg.mu);
        for (auto& w : reg.arenas)
            if (auto a = w.lock(); a && a->id == id) arena = std::move(a);
    }
    if (!arena) {
        if (arena_size < kHeaderBytes || arena_size > (std::uint64_t{1} << 41) ||
            sys::file_size(fd.get()) != arena_size)
            throw DecodeError("multiproc: corrupt message: shared arena of unexpected size");
        auto a = std::make_shared<ArenaMap>();
        a->map = sys::Mapping::map_shared(fd.get(), arena_size);
        a->fd = std::move(fd);
        a->id = id;
        if (a->hdr()->magic != kArenaMagic || !(a->hdr()->id == id))
            throw DecodeError("multiproc: corrupt message: descriptor is not the named arena");
        std::lock_guard lk(reg.mu);
        remember(reg, a);
        arena = std::move(a);
    }
    if (off < kHeaderBytes || data_off < off + sizeof(BlockHeader) || data_off > arena_size ||
        size > arena_size - data_off ||
        arena->block(static_cast<std::uint32_t>(off))->magic != kBlockMagic)
        throw DecodeError("multiproc: corrupt message: block outside its shared arena");
    data_ = arena->map.data() + data_off;
    size_ = static_cast<std::size_t>(size);
    ref_ = std::make_shared<BlockRef>(std::move(arena), static_cast<std::uint32_t>(off));
}

}  // namespace mp::detail
