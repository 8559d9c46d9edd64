// The startup baseline of docs/bench.md's MPI rows: a bare MPI program, MPI_Init and
// MPI_Finalize and nothing else, timed under the same mpirun as bench/mpi_tiny's "first" run.
#include <mpi.h>

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    MPI_Finalize();
    return 0;
}
