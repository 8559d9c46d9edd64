// The hooks through which the optional multiproc::mpi library plugs the "mpi" context into the
// core, so that the core never depends on MPI: the library registers them when it is loaded
// (a static initializer), mp::init calls `enter`, get_context("mpi") calls `check`, and an
// engine built with that context asks `open_host` for its workers (the ranks).
#pragma once

#include <memory>

namespace mp::detail {

class WorkerHost;

/// What a cluster transport (multiproc::mpi) provides.
struct ClusterHooks {
    /// mp::init: starts the cluster runtime when this process runs under its launcher; on a
    /// worker rank serves tasks and exits, never returning.
    void (*enter)(int argc, char** argv);
    /// get_context("mpi"): throws a clear mp::ProcessError when this process cannot use it.
    void (*check)();
    /// The workers of one engine: `processes` of them, or all when processes <= 0.
    std::shared_ptr<WorkerHost> (*open_host)(int processes);
    /// How many workers the cluster has in all (what "every CPU" means for it): throws as
    /// `check` when this process cannot use it.
    int (*workers)();
};

/// Registers the cluster hooks (the library's static initializer; the last call wins).
void register_cluster(const ClusterHooks* hooks) noexcept;
/// The registered hooks, or nullptr when multiproc::mpi is not linked.
[[nodiscard]] const ClusterHooks* cluster() noexcept;

}  // namespace mp::detail
