// Named shared memory (Python's multiprocessing.shared_memory.SharedMemory).
//
//   mp::SharedMemory shm("", true, 4096);        // create, with a generated name
//   mp::SharedMemory other(shm.name());          // attach by name (any process, even unrelated)
//   std::span<std::byte> b = other.buf();
//   other.close(); shm.close(); shm.unlink();
//
// A segment is a POSIX shared-memory object (shm_open, visible in /dev/shm/<name>). Unlike the
// anonymous arenas under Value and Array, it has a name and outlives its processes until
// unlinked, so the segments a program creates are tracked: one the program created and did
// not unlink is unlinked when the program's last process has exited, also when its processes
// were killed by SIGKILL (a resource tracker process does it, see src/resource_tracker.hpp).
// "The program" is the process that created the first tracked segment, every process it
// forks afterwards, and every process that received a SharedMemory handle from them (the
// handle carries the tracker's descriptor). Pass track = false (Python 3.13) to keep a
// segment after the program ends; then unlink it yourself. Only creation registers a segment
// (attaching never does, unlike Python before 3.13, whose attachers could unlink a segment
// still in use by another program).
//
// Handles share: copies refer to the same mapping, and close() closes it for every copy in
// this process. A handle passed to a Process (any start method), a Queue or a Pipe arrives
// mapped in the receiver (it carries the segment's descriptor, so it works even after
// unlink()).
//
// Thread safety: distinct handles may be used from distinct threads; close() must not race
// with other use of the same handle's memory. Nothing here blocks.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "multiproc/reduction.hpp"

namespace mp {

/// A named POSIX shared-memory segment, mapped into this process.
class SharedMemory {
public:
    /// An empty handle.
    SharedMemory() noexcept = default;
    /// Attaches to the segment `name` (create = false), or creates it with `size` bytes
    /// (create = true; an empty name generates one). `name` may start with '/'. Errors:
    /// attaching to a missing name is std::system_error(ENOENT) naming it; creating an
    /// existing name is std::system_error(EEXIST); create with size 0 is std::invalid_argument.
    /// track = false: the resource tracker will not unlink it when the program ends.
    explicit SharedMemory(std::string_view name, bool create = false, std::size_t size = 0,
                          bool track = true);

    /// The name, without a leading '/' (as Python's .name).
    [[nodiscard]] const std::string& name() const;
    /// The size of the mapping in bytes.
    [[nodiscard]] std::size_t size() const;
    /// The mapped bytes (empty once closed).
    [[nodiscard]] std::span<std::byte> buf() const;
    /// Unmaps the segment and closes its descriptor in this process (for every copy of this
    /// handle); the segment itself remains until unlinked. Idempotent.
    void close() noexcept;
    /// Removes the name (the memory lives on while mapped anywhere) and unregisters it from
    /// the resource tracker. std::system_error(ENOENT) if already gone.
    void unlink();

    /// Codec: the segment's descriptor, name and size (and the tracker's descriptor).
    void save(Encoder& e) const;
    /// Codec.
    void load(Decoder& d);

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace mp
