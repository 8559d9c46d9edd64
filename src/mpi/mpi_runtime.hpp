// The MPI job as multiproc runs it: MPI started in mp::init when the process runs under an MPI
// launcher, every rank's build checked against rank 0's, worker ranks serving sessions until
// rank 0 shuts the job down at its exit (or aborts it after a rank died).
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace mp::detail::mpi {

/// A rank of the job, as rank 0 knows it from the start-up exchange.
struct RankInfo {
    std::string host;  ///< MPI_Get_processor_name
    long pid = 0;      ///< its process id on its host
    int slots = 1;     ///< how many tasks it runs at once (worker ranks; slot_count())
};

/// The job, on this process (empty and !active outside an MPI run).
struct World {
    bool active = false;  ///< MPI was started by mp::init
    int rank = 0;
    int size = 1;
    std::vector<RankInfo> ranks;  ///< every rank, by rank
};

/// This process's job.
const World& world() noexcept;

/// The job's communicator: MPI_COMM_WORLD, or, once rank 0 spawned its workers
/// (mp::mpi::spawn_workers), rank 0 merged with them (rank 0 first, the spawned after it).
MPI_Comm job_comm() noexcept;

/// "rank 2 (pid 4711 on host n1)".
std::string describe_rank(int rank);

/// Rank 0 after a rank died: the job cannot go on (Open MPI has no recovery from a lost rank).
/// Prints `report` to stderr and aborts the job (MPI_Abort, exit code 1) at this process's exit
/// or after a grace period, whichever comes first, so that every rank ends within seconds.
void doom_job(const std::string& report) noexcept;

/// How many tasks this rank runs at once: MULTIPROC_MPI_TASKS_PER_RANK when set (> 0), else the
/// CPUs its affinity mask allows (how --map-by/--bind-to and Slurm's --cpus-per-task show),
/// divided by OMP_NUM_THREADS when set; at least 1.
int slot_count();

/// The environment variable that tells a rank's slot worker (a local process, which inherits the
/// launcher's environment) the rank it serves: mp::mpi::rank() there.
inline constexpr const char* kSlotRankVar = "MULTIPROC_MPI_SLOT_RANK";

/// MPI_Finalize; where rank 0 spawned its workers, they part first.
void finalize() noexcept;

/// Rank 0 of a one-rank job: starts n workers with MPI_Comm_spawn (this program, its
/// arguments), joins them into job_comm and checks their build; mp::UsageError when the job has
/// static workers or a pool already uses the ranks.
void spawn(int n);

/// A worker rank's life: relays the sessions rank 0 opens to its slots' worker processes until
/// rank 0 shuts the job down.
[[noreturn]] void serve_rank();

}  // namespace mp::detail::mpi
