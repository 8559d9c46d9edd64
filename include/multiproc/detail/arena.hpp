// Shared arenas: the memory under Value, Array, Lock and every other shared primitive.
//
// An arena is a memfd (memfd_create, MFD_CLOEXEC) mapped MAP_SHARED. It has no name, so a
// program killed by SIGKILL at any point leaves nothing behind: the kernel frees the memory
// when the last process that maps it or holds its descriptor is gone. A forked child inherits
// the mappings; under spawn and forkserver a block travels as (descriptor, arena id, offset)
// through the codec, and the receiver maps the arena once per process.
//
// Small blocks come from per-size-class lock-free free lists and a bump pointer inside the
// arena, with no system call once the arena exists; a process killed in the middle of an
// allocation can at worst leak that block, never corrupt the lists. Blocks larger than a
// quarter of an arena get an arena of their own.
//
// Lifetime ("the last handle"): every block carries a reference count in shared memory. Each
// process that holds handles to a block owns one reference (taken at allocation, by a forked
// child at fork through pthread_atfork, or by the encoder for a handle in flight, which the
// decoder adopts). A process gives its reference back when its last handle to the block is
// destroyed; at zero the block returns to its arena's free list, reusable by any process. A
// process that exits without destroying its handles (_exit, a signal) keeps its reference, so
// the block stays allocated until the arena itself goes away, which is when the last process
// mapping it exits. A process maps an arena while it holds handles into it.
//
// Thread safety: SharedBlock is a handle like std::shared_ptr: distinct objects may be used
// from distinct threads; allocation is safe from any thread and process.
#pragma once

#include <cstddef>
#include <memory>

#include "multiproc/reduction.hpp"

namespace mp::detail {

struct BlockRef;  // process-local owner of one reference to a shared block (arena.cpp)

/// A handle to one block of shared memory; copies refer to the same block.
class SharedBlock {
public:
    /// An empty handle.
    SharedBlock() noexcept = default;
    /// Allocates `bytes` zero-initialised bytes aligned to `align` (a power of two <= 4096).
    static SharedBlock allocate(std::size_t bytes, std::size_t align = alignof(std::max_align_t));

    /// The block's first byte (the same memory in every process that holds the block).
    [[nodiscard]] void* data() const noexcept { return data_; }
    /// The usable size in bytes (at least what was asked for).
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// True unless empty.
    explicit operator bool() const noexcept { return data_ != nullptr; }

    /// Codec: the arena's descriptor, identity and the block's place; takes a reference for
    /// the receiver, which load() adopts.
    void save(Encoder& e) const;
    /// Codec: maps the arena (once per process) and adopts the reference save() took.
    void load(Decoder& d);

private:
    std::shared_ptr<BlockRef> ref_;
    void* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace mp::detail
