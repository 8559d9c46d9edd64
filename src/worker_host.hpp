// Workers the engine does not start as local processes: the ranks of an MPI job (multiproc::mpi
// implements this). A fixed set, each a session the engine opens (then queues the init frame on
// its link, as for a local worker), watches through a sentinel and closes; a worker that dies
// cannot be replaced, so the engine breaks instead (worker_lifecycle.cpp).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "transport.hpp"

namespace mp::detail {

/// One worker of a WorkerHost, as the engine holds it.
struct HostedWorker {
    std::unique_ptr<wire::Transport> link;  ///< frames to and from it
    int sentinel = -1;                      ///< readable once it is gone (owned by the host)
    long pid = 0;                           ///< its process id on its own host
};

/// A fixed set of workers that run elsewhere (MPI ranks).
class WorkerHost {
public:
    virtual ~WorkerHost() = default;
    /// How many workers it has.
    [[nodiscard]] virtual int size() const noexcept = 0;
    /// Opens worker `index`'s session; mp::BrokenProcessPool (saying why) for an index past
    /// size(): a worker asked for as a replacement, which a host cannot give.
    virtual HostedWorker open(std::size_t index) = 0;
    /// Once worker `index`'s sentinel fired: how it ended ("MPI rank 2 (pid 4711 on host n1)
    /// died"), told the tasks it held (`held` of them).
    virtual std::string reap(std::size_t index, std::size_t held) = 0;
    /// Ends worker `index`'s session: after its exit frame was sent (`planned`), or at once
    /// (the pool is terminated: the worker drops what it holds).
    virtual void close(std::size_t index, bool planned) noexcept = 0;
};

}  // namespace mp::detail
