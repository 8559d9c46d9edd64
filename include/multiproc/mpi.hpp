// multiproc::mpi: the task engine over the ranks of an MPI job (docs/mpi.md). Link the optional
// target multiproc::mpi (find_package(multiproc COMPONENTS mpi)), call mp::init(argc, argv)
// first thing in main, and run the program under an MPI launcher:
//
//   int main(int argc, char** argv) {
//       mp::init(argc, argv);              // ranks 1..N-1 serve tasks here and exit with rank 0
//       mp::PoolOptions o;
//       o.context = mp::get_context("mpi");
//       mp::Pool pool(std::nullopt, o);     // every worker rank
//       auto r = pool.map(square, std::vector<int>{1, 2, 3});     // runs on ranks 1..N-1
//   }
//   $ mpirun -n 3 ./prog                   (or srun -n 3 ./prog)
//
// Rank 0 runs main; every other rank serves the engine's sessions and never runs main's body.
// At start every rank's build (the build ids of the program and of the module holding
// multiproc) is compared with rank 0's: a mismatch makes mp::init throw mp::ProcessError on rank
// 0 and exit 1 on the others, naming the rank and host. A rank that dies fails the pool's
// unfinished tasks with mp::BrokenProcessPool naming the rank, its pid and host, and the job
// ends with exit code 1 (Open MPI and MPICH cannot go on without a lost rank).
#pragma once

namespace mp::mpi {

/// True when mp::init started MPI (this process runs under an MPI launcher, with the
/// multiproc::mpi target linked).
[[nodiscard]] bool active() noexcept;
/// This process's rank in MPI_COMM_WORLD (0 outside an MPI run); in a task, the rank whose slot
/// runs it.
[[nodiscard]] int rank() noexcept;
/// The number of ranks of the job (1 outside an MPI run).
[[nodiscard]] int size() noexcept;
/// On request instead of static workers: rank 0 of a job started with one rank (`mpirun -n 1`)
/// starts n worker processes of this program with MPI_Comm_spawn; call it after mp::init and
/// before the first pool on the "mpi" context. mp::UsageError in a job with static workers.
void spawn_workers(int n);

}  // namespace mp::mpi
