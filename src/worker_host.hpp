// Workers the engine does not start as local processes: the slots of an MPI job's ranks
// (multiproc::mpi implements this). A fixed set, each a session the engine opens (then queues
// the init frame on its link, as for a local worker), watches through a sentinel and closes. A
// worker whose process died while its host lives is opened again (a new session, as a local
// worker is replaced); one whose host is gone cannot be, so the engine breaks instead
// (worker_lifecycle.cpp).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
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

/// How a hosted worker ended, once its sentinel fired.
struct HostedDeath {
    std::string how;            ///< "MPI rank 2 (pid 4711 on host n1) died"
    std::uint64_t culprit = 0;  ///< the task it was running (0: none, or not known)
    std::size_t element = 0;    ///< the item of that task it was running
    bool planned = false;       ///< it exited after its exit frame (retired), not by a death
    bool timed_out = false;     ///< its host killed it: task `culprit` overran its time limit
    pid_t pid = 0;              ///< its process, when the host knows it (0: the HostedWorker's)
};

/// A fixed set of workers that run elsewhere (the slots of MPI ranks).
class WorkerHost {
public:
    virtual ~WorkerHost() = default;
    /// How many workers it has.
    [[nodiscard]] virtual int size() const noexcept = 0;
    /// Opens worker `index`'s session (again after its process died); mp::BrokenProcessPool
    /// (saying why) when it cannot be: its host is gone.
    virtual HostedWorker open(std::size_t index) = 0;
    /// Once worker `index`'s sentinel fired: how it ended, told the tasks it held (`held`).
    virtual HostedDeath reap(std::size_t index, std::size_t held) = 0;
    /// Ends worker `index`'s session: after its exit frame was sent (`planned`), or at once
    /// (the pool is terminated: the worker drops what it holds).
    virtual void close(std::size_t index, bool planned) noexcept = 0;
    /// Kills worker `index`'s process now (its task was cancelled with mp::force); its death is
    /// then reported through its sentinel as any other, and the session stays open.
    virtual void kill(std::size_t index) noexcept = 0;
};

}  // namespace mp::detail
