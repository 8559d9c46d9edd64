// What the files of the MPI tests' program share (tests/mpi/CMakeLists.txt builds them into one
// program, mpi_program): the checks, the tasks and the option sets every scenario uses, and the
// scenarios of tests/mpi/mpi_worker_options.cpp that main (mpi_program.cpp) dispatches to.
#pragma once

#include <multiproc/multiproc.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace mp_mpi_test {

// --- tests/mpi/mpi_checks.cpp ----------------------------------------------------------------

/// A task: x * x.
int square(int x);
/// A task: "<pid> <OMP_NUM_THREADS>" of the slot's worker process it runs in.
std::string slot_env(int);
/// A task: waits (at most 60 s) until the file `path` exists; 1 if it does.
int hold_until(const std::string& path);
/// Prints "FAILED: what" and counts a failure unless ok.
void check(bool ok, const char* what);
/// The failures check() counted.
int failure_count();
/// 0, 1, ..., n - 1.
std::vector<int> iota(int n);
/// Pool options on the "mpi" context.
mp::PoolOptions on_mpi();
/// A new empty directory under the temporary directory, named after `what` and this process.
std::string fresh_dir(const char* what);

// --- tests/mpi/mpi_worker_options.cpp: a slot's worker's life under the pool's options -------

/// A pool whose slots' workers retire (options `o`): 20 tasks of chunksize 1 run in at least
/// `processes` worker processes, at least `retired` retirements are counted as `why`, and the
/// pool goes on.
void retires(const mp::PoolOptions& o, mp::RestartReason why, std::size_t processes,
             std::size_t retired);
/// A held slot holds three prefetched batches behind the running one (mpi.prefetch).
void run_prefetch();
/// ... but one batch while a large map's cost per item is unknown (mpi.probe).
void run_probe();
/// Future::cancel(mp::force) kills the slot's worker running the task (mpi.cancel).
void run_cancel();
/// task_timeout: the rank kills a worker whose task overran; TimeoutError (mpi.timeout).
void run_timeout();

}  // namespace mp_mpi_test
