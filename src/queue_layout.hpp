// The layout of a queue's shared memory (see the file comment of queue_core.hpp for how the
// parts are used). Private to the src/queue_*.cpp files, except that the tests and the fuzz
// harness that corrupt a queue's memory on purpose need to know where its fields are.
//
// Every process that maps a queue can write any byte of it: nothing read from this memory is
// trusted. The read-only part of the header is checked when a handle is attached and compared
// with the attached copy on every operation; offsets, lengths and slot words are checked where
// they are used; every loop over shared state is bounded (mp::ProcessError "queue memory is
// corrupt" otherwise).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sys/robust_mutex.hpp"  // pthread_mutex_t, part of the shared layout

namespace mp::detail::queue_layout {

constexpr std::uint64_t kMagic = 0x3165756575717075ULL;  // "upqueue1"
constexpr std::size_t kSpan = std::size_t{1} << 36;      // 64 GiB of address space
constexpr std::size_t kChunk = std::size_t{1} << 16;     // 64 KiB
constexpr std::size_t kChunkHeader = 64;
constexpr std::size_t kInlineMax = kChunk / 4;
constexpr std::size_t kRecHeader = 8;
constexpr int kClasses = 24;  // 64 KiB << 0 .. 64 KiB << 23 (512 GiB)
constexpr std::size_t kKeepResident = std::size_t{32} << 20;  // freed storage kept for reuse
constexpr std::size_t kPage = 4096;
constexpr std::uint32_t kInline = 1, kExtent = 2, kSkip = 3;

// The ring of small items (see the file comment).
constexpr std::size_t kSlot = 128;
constexpr std::size_t kSlotPayload = kSlot - 16;
constexpr std::uint64_t kRingUnbounded = 8192;              // slots of an unbounded queue (1 MiB)
constexpr std::uint64_t kRingMax = std::uint64_t{1} << 16;  // bounded: min(maxsize, this)
constexpr std::uint64_t kFree = 0, kWriting = 1, kReady = 2;
constexpr std::uint64_t kPosMask = (std::uint64_t{1} << 40) - 1;

constexpr std::size_t align8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

struct ChunkHeader {
    std::atomic<std::uint64_t> next;  // the next chunk of the record stream (0: none yet)
    std::uint64_t free_next;          // link in a free list
    std::uint32_t cls;
    std::uint32_t punched;  // pages given back while on the free list
    std::uint64_t used;     // bytes written since allocated (what is resident)
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

    alignas(128) WaitWord items;   // consumers wait for the tail to move
    alignas(128) WaitWord room;    // producers of a bounded queue wait for the gets to move
    alignas(128) WaitWord joined;  // join() waits for tasks_done to reach puts
};
static_assert(sizeof(Shared) <= kChunk);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

/// Byte offset of ring slot `index` from the start of the queue's memory.
constexpr std::size_t slot_offset(std::uint64_t index) { return kChunk + index * kSlot; }

}  // namespace mp::detail::queue_layout
