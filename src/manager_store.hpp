// The storage of a manager dict: a hash table of blobs in shared memory under a robust lock, so
// that clients on the server's machine read and write it in place (no socket round trip) while
// remote clients reach the same table through the server.
//
// One memfd of kRegionBytes, mapped MAP_SHARED by the server and by every attached client
// (pages exist only once written): a header, a slot array (open addressing, linear probing) and
// an append-only heap of entries (seq, hash, key, value). A write appends a whole new entry,
// then points a slot at it, then marks the old entry dead: a process killed at any point leaves
// entries that are either complete or beyond the heap's end, so the next locker (told by
// mp::OwnerDied) rebuilds the slots from the heap and goes on. The heap is compacted in place
// when full. Insertion order (Python's) is each key's first seq, kept across updates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "multiproc/file_descriptor.hpp"
#include "multiproc/synchronize.hpp"
#include "sys/mapping.hpp"

namespace mp::detail {

/// A shared table of (key blob, value blob); every member but the constructors, save/load and
/// lock() requires the caller to hold lock().
class DictStore {
public:
    /// The memory of one table (virtual: pages are allocated only as they are written).
    static constexpr std::size_t kRegionBytes = std::size_t{256} << 20;

    /// An empty handle (to load into).
    DictStore() = default;
    /// A new empty table.
    static std::shared_ptr<DictStore> create();

    /// Holds the table's lock; repairs the table when the previous holder died holding it.
    class Locked {
    public:
        explicit Locked(DictStore& s);
        ~Locked() { s_.lock_.release(); }
        Locked(const Locked&) = delete;
        Locked& operator=(const Locked&) = delete;

    private:
        DictStore& s_;
    };

    /// The value of key, if present.
    [[nodiscard]] std::optional<std::string_view> find(std::string_view key) const;
    /// Sets key to value.
    void put(std::string_view key, std::string_view value);
    /// Removes key; returns whether it was there.
    bool remove(std::string_view key);
    /// The number of keys.
    [[nodiscard]] std::size_t size() const;
    /// Every (key, value), in insertion order (views valid until the next change).
    [[nodiscard]] std::vector<std::pair<std::string_view, std::string_view>> entries() const;
    /// Removes every key.
    void clear();

    /// Codec: the lock and the memfd.
    void save(Encoder& e) const { e(lock_, fd_); }
    /// Codec: maps the memfd.
    void load(Decoder& d);

private:
    struct Head;
    struct Entry;
    struct Probe {
        std::size_t slot;
        bool found;
    };

    Head& head() const;
    std::uint64_t* slots() const;
    std::byte* heap() const;
    Entry& entry(std::uint64_t off) const;
    Probe probe(std::string_view key, std::uint64_t hash) const;
    std::uint64_t append(std::uint64_t seq, std::uint64_t hash, std::string_view key,
                         std::string_view value);
    void make_room(std::size_t bytes);
    void rebuild(std::uint64_t capacity);
    void compact();

    Lock lock_;
    FileDescriptor fd_;
    std::shared_ptr<sys::Mapping> map_;
};

}  // namespace mp::detail
