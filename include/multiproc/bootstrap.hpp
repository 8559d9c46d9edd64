// mp::init: the C++ form of `if __name__ == "__main__":`. Call it first thing in main(). In a
// spawned child it runs the child's work and exits; on an MPI rank other than 0 (multiproc::mpi
// linked, docs/mpi.md) it serves tasks and exits; in any other process it returns at once.
#pragma once

namespace mp {

/// Runs a spawned child's work, or an MPI worker rank's, and exits; else returns.
void init(int argc, char** argv);

}  // namespace mp
