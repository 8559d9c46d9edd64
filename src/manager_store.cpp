#include "manager_store.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "sys/memfd.hpp"

namespace mp::detail {

namespace {
constexpr std::uint64_t kMagic = 0x3154434944504d;  // "MPDICT1"
constexpr std::size_t kSlotsAt = 4096;
constexpr std::uint64_t kMaxSlots = std::uint64_t{1} << 21;
constexpr std::size_t kHeapAt = kSlotsAt + kMaxSlots * sizeof(std::uint64_t);
constexpr std::size_t kHeapBytes = DictStore::kRegionBytes - kHeapAt;
constexpr std::uint64_t kEmpty = 0, kTomb = 1, kBias = 2;  // a slot holds an entry's offset + kBias

std::size_t round8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }
std::uint64_t hash_of(std::string_view key) { return std::hash<std::string_view>{}(key); }

// Stores a word so that the writes before it are never reordered after it (a process killed in
// between leaves either the old word or a complete entry behind it).
void publish(std::uint64_t& word, std::uint64_t value) {
    std::atomic_ref<std::uint64_t>(word).store(value, std::memory_order_release);
}
}  // namespace

struct DictStore::Head {
    std::uint64_t magic, capacity, used_slots, count, heap_used, dead_bytes, next_seq;
};

struct DictStore::Entry {
    std::uint64_t seq, hash;
    std::uint32_t key_len, value_len;
    std::uint64_t live;
    [[nodiscard]] std::size_t bytes() const { return round8(sizeof(Entry) + key_len + value_len); }
    [[nodiscard]] std::string_view key() const {
        return {reinterpret_cast<const char*>(this + 1), key_len};
    }
    [[nodiscard]] std::string_view value() const {
        return {reinterpret_cast<const char*>(this + 1) + key_len, value_len};
    }
};

std::shared_ptr<DictStore> DictStore::create() {
    auto s = std::make_shared<DictStore>();
    s->fd_ = FileDescriptor(sys::make_memfd("multiproc-manager-dict", kRegionBytes).release());
    s->map_ = std::make_shared<sys::Mapping>(sys::Mapping::map_shared(s->fd_.get(), kRegionBytes));
    Head& h = s->head();
    h.capacity = 1024;
    h.magic = kMagic;
    return s;
}

void DictStore::load(Decoder& d) {
    d(lock_, fd_);
    if (sys::file_size(fd_.get()) != kRegionBytes)
        throw DecodeError("multiproc: a manager dict of the wrong size");
    map_ = std::make_shared<sys::Mapping>(sys::Mapping::map_shared(fd_.get(), kRegionBytes));
    if (head().magic != kMagic) throw DecodeError("multiproc: not a manager dict");
}

DictStore::Locked::Locked(DictStore& s) : s_(s) {
    try {
        s.lock_.acquire();
    } catch (const OwnerDied&) {
        s.rebuild(s.head().capacity);  // a writer died: rebuild the slots from the heap
    }
}

DictStore::Head& DictStore::head() const { return *reinterpret_cast<Head*>(map_->data()); }
std::uint64_t* DictStore::slots() const {
    return reinterpret_cast<std::uint64_t*>(map_->data() + kSlotsAt);
}
std::byte* DictStore::heap() const { return map_->data() + kHeapAt; }
DictStore::Entry& DictStore::entry(std::uint64_t off) const {
    return *reinterpret_cast<Entry*>(heap() + off);
}

DictStore::Probe DictStore::probe(std::string_view key, std::uint64_t hash) const {
    const std::uint64_t mask = head().capacity - 1;
    std::optional<std::size_t> tomb;
    for (std::uint64_t i = hash & mask;; i = (i + 1) & mask) {
        const std::uint64_t s = slots()[i];
        if (s == kEmpty) return {tomb.value_or(i), false};
        if (s == kTomb) {
            if (!tomb) tomb = i;
            continue;
        }
        const Entry& e = entry(s - kBias);
        if (e.hash == hash && e.key() == key) return {i, true};
    }
}

std::optional<std::string_view> DictStore::find(std::string_view key) const {
    const Probe p = probe(key, hash_of(key));
    if (!p.found) return std::nullopt;
    return entry(slots()[p.slot] - kBias).value();
}

std::uint64_t DictStore::append(std::uint64_t seq, std::uint64_t hash, std::string_view key,
                                std::string_view value) {
    Head& h = head();
    const std::uint64_t off = h.heap_used;
    Entry& e = entry(off);
    e = Entry{seq, hash, static_cast<std::uint32_t>(key.size()),
              static_cast<std::uint32_t>(value.size()), 1};
    std::memcpy(&e + 1, key.data(), key.size());
    std::memcpy(reinterpret_cast<char*>(&e + 1) + key.size(), value.data(), value.size());
    publish(h.heap_used, off + e.bytes());
    return off;
}

void DictStore::make_room(std::size_t bytes) {
    Head& h = head();
    if (h.heap_used + bytes > kHeapBytes) compact();
    if (h.heap_used + bytes > kHeapBytes)
        throw std::length_error("multiproc: a manager dict holds at most " +
                                std::to_string(kHeapBytes >> 20) + " MiB of keys and values");
    if ((h.used_slots + 1) * 10 > h.capacity * 7) {
        const std::uint64_t capacity =
            (h.count + 1) * 10 > h.capacity * 5 ? h.capacity * 2 : h.capacity;
        if (capacity > kMaxSlots)
            throw std::length_error("multiproc: a manager dict holds at most 1.4 million keys");
        rebuild(capacity);
    }
}

void DictStore::put(std::string_view key, std::string_view value) {
    if (key.size() > 0xffffffffU || value.size() > 0xffffffffU)
        throw std::length_error("multiproc: a manager dict key or value over 4 GiB");
    make_room(round8(sizeof(Entry) + key.size() + value.size()));
    Head& h = head();
    const std::uint64_t hash = hash_of(key);
    const Probe p = probe(key, hash);
    std::uint64_t& slot = slots()[p.slot];
    if (p.found) {
        Entry& old = entry(slot - kBias);
        publish(slot, append(old.seq, hash, key, value) + kBias);
        old.live = 0;
        h.dead_bytes += old.bytes();
    } else {
        const bool fresh = slot == kEmpty;
        publish(slot, append(h.next_seq++, hash, key, value) + kBias);
        h.used_slots += fresh ? 1 : 0;
        ++h.count;
    }
}

bool DictStore::remove(std::string_view key) {
    const Probe p = probe(key, hash_of(key));
    if (!p.found) return false;
    Head& h = head();
    std::uint64_t& slot = slots()[p.slot];
    Entry& e = entry(slot - kBias);
    publish(slot, kTomb);
    e.live = 0;
    h.dead_bytes += e.bytes();
    --h.count;
    return true;
}

std::size_t DictStore::size() const { return head().count; }

std::vector<std::pair<std::string_view, std::string_view>> DictStore::entries() const {
    std::vector<const Entry*> live;
    live.reserve(head().count);
    for (std::uint64_t off = 0; off < head().heap_used; off += entry(off).bytes())
        if (entry(off).live) live.push_back(&entry(off));
    std::sort(live.begin(), live.end(),
              [](const Entry* a, const Entry* b) { return a->seq < b->seq; });
    std::vector<std::pair<std::string_view, std::string_view>> out;
    out.reserve(live.size());
    for (const Entry* e : live) out.emplace_back(e->key(), e->value());
    return out;
}

void DictStore::clear() {
    Head& h = head();
    std::memset(slots(), 0, h.capacity * sizeof(std::uint64_t));
    h.used_slots = h.count = h.dead_bytes = 0;
    publish(h.heap_used, 0);
}

// Points the slots at every live entry of the heap, in heap order; of two live entries with
// one key (a writer died between linking the new one and marking the old one dead), the later
// wins. Also the repair after a holder died.
void DictStore::rebuild(std::uint64_t capacity) {
    Head& h = head();
    std::memset(slots(), 0, capacity * sizeof(std::uint64_t));
    h.capacity = capacity;
    h.used_slots = h.count = 0;
    std::uint64_t live_bytes = 0;
    for (std::uint64_t off = 0; off < h.heap_used; off += entry(off).bytes()) {
        Entry& e = entry(off);
        if (!e.live) continue;
        const Probe p = probe(e.key(), e.hash);
        if (p.found) {
            Entry& older = entry(slots()[p.slot] - kBias);
            older.live = 0;
            live_bytes -= older.bytes();
        } else {
            ++h.used_slots;
            ++h.count;
        }
        slots()[p.slot] = off + kBias;
        live_bytes += e.bytes();
        h.next_seq = std::max(h.next_seq, e.seq + 1);
    }
    h.dead_bytes = h.heap_used - live_bytes;
}

// Slides the live entries down over the dead ones (heap order kept), then rebuilds the slots.
void DictStore::compact() {
    Head& h = head();
    std::uint64_t to = 0;
    for (std::uint64_t off = 0; off < h.heap_used;) {
        const std::size_t n = entry(off).bytes();
        if (entry(off).live) {
            if (to != off) std::memmove(heap() + to, heap() + off, n);
            to += n;
        }
        off += n;
    }
    h.heap_used = to;
    rebuild(h.capacity);
}

}  // namespace mp::detail
