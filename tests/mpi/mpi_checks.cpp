// The checks, tasks and option sets every scenario of the MPI tests' program uses
// (mpi_program.hpp).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "mpi_program.hpp"

namespace mp_mpi_test {

int square(int x) { return x * x; }

// What a task sees of its rank's slot: the process it runs in and its OMP_NUM_THREADS.
std::string slot_env(int) {
    const char* omp = std::getenv("OMP_NUM_THREADS");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return std::to_string(::getpid()) + " " + (omp ? omp : "unset");
}

namespace {
int failures = 0;
}  // namespace

void check(bool ok, const char* what) {
    if (ok) return;
    std::printf("FAILED: %s\n", what);
    ++failures;
}

int failure_count() { return failures; }

std::vector<int> iota(int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
    return v;
}

mp::PoolOptions on_mpi() {
    mp::PoolOptions o;
    o.context = mp::get_context("mpi");
    return o;
}

std::string fresh_dir(const char* what) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("mp_mpi_" + std::string(what) + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir.string();
}

// Waits (at most 60 s) until the file `path` exists.
int hold_until(const std::string& path) {
    for (int i = 0; i < 6000 && !std::filesystem::exists(path); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return std::filesystem::exists(path) ? 1 : 0;
}

}  // namespace mp_mpi_test
