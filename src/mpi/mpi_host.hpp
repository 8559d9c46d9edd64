// Rank 0's side of the MPI transport: the slots of the worker ranks as an engine's WorkerHost,
// with one progress thread that makes every MPI call while the host is open
// (MPI_THREAD_SERIALIZED).
#pragma once

#include <memory>

#include "worker_host.hpp"

namespace mp::detail::mpi {

/// The first `processes` slots of the worker ranks (slot 0 of every rank first) as one engine's
/// workers (all of them when processes <= 0 or more than there are).
/// A slot serves one engine at a time: mp::UsageError from the engine while another holds it.
std::shared_ptr<WorkerHost> open_host(int processes);

/// True once a pool, executor or parallel_map used the worker ranks.
bool ranks_in_use() noexcept;

/// Rank 0 at its exit, with no host open: tells every worker rank to finalize and exit 0.
void shut_down_ranks() noexcept;

}  // namespace mp::detail::mpi
