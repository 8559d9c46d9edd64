// The MPI job's start (mp::init through the cluster hooks), its same-build check and its end.
#include "mpi/mpi_runtime.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "context_cluster.hpp"
#include "mpi/mpi_host.hpp"
#include "mpi/mpi_wire.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/mpi.hpp"
#include "multiproc/process.hpp"
#include "sys/modules.hpp"

namespace mp::detail::mpi {

namespace {

World g_world;
MPI_Comm g_comm = MPI_COMM_WORLD;
MPI_Comm g_inter = MPI_COMM_NULL;  // rank 0 and the workers it spawned, as two groups
std::atomic<bool> g_doomed{false};
std::vector<std::string> g_args;  // the program's arguments after argv[0], for spawned workers

// Grace between a rank's death and the abort of the job: the program may report the error it
// got, and mpirun usually tears the job down sooner by itself (about a second).
constexpr auto kAbortGrace = std::chrono::seconds(5);

// The launchers' environment: Open MPI's mpirun, PMI (MPICH's hydra, Slurm), PMIx (Slurm).
bool under_launcher() {
    return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") ||
           std::getenv("PMIX_RANK");
}

// What every rank tells every other at start: its build and where it runs.
struct RankRecord {
    char build[256];
    char host[MPI_MAX_PROCESSOR_NAME];
    std::int64_t pid;
    std::int32_t slots;
};

// The build: the identity of the main executable and of the module holding multiproc (the same
// module when multiproc is linked statically), which is where every shipped function lives.
std::string build_identity() {
    auto list = sys::loaded_modules();
    std::string out;
    if (const auto* m = sys::main_module(*list)) out = sys::describe(m->id);
    const auto self = reinterpret_cast<std::uintptr_t>(&build_identity);
    const auto* lib = sys::find_module_containing(*list, self);
    if (lib && !lib->is_main) out += " + " + lib->path + " " + sys::describe(lib->id);
    return out;
}

void copy_field(char* dst, std::size_t n, const std::string& s) {
    std::memset(dst, 0, n);
    std::memcpy(dst, s.data(), std::min(n - 1, s.size()));
}

// Every rank learns every rank's record; a rank whose build differs from rank 0's stops the job
// on every rank with a message naming it (rank 0: mp::ProcessError from mp::init).
void check_same_build() {
    RankRecord mine{};
    copy_field(mine.build, sizeof mine.build, build_identity());
    int len = 0;
    MPI_Get_processor_name(mine.host, &len);
    mine.pid = static_cast<std::int64_t>(current_process().pid());
    mine.slots = g_world.rank == 0 ? 0 : slot_count();
    std::vector<RankRecord> all(static_cast<std::size_t>(g_world.size));
    check_mpi(MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE,
                            g_comm),
              "the start-up exchange");
    for (const auto& r : all) g_world.ranks.push_back({std::string(r.host), r.pid, r.slots});
    std::string errors;
    for (int i = 1; i < g_world.size; ++i) {
        const auto& r = all[static_cast<std::size_t>(i)];
        if (std::strcmp(r.build, all[0].build) == 0) continue;
        errors += "\n  " + describe_rank(i) + " runs " + r.build + ", rank 0 (host " + all[0].host +
                  ") runs " + all[0].build;
    }
    if (errors.empty()) return;
    const std::string msg =
        "multiproc: mpi: not every rank runs the same build of the program:" + errors;
    MPI_Finalize();
    g_world.active = false;
    if (g_world.rank == 0) throw ProcessError(msg);
    std::fprintf(stderr, "%s (seen from rank %d)\n", msg.c_str(), g_world.rank);
    std::exit(1);
}

void at_exit() noexcept {
    if (!g_world.active || g_world.rank != 0) return;
    if (g_doomed.load()) {
        std::fflush(nullptr);  // MPI_Abort ends the process without flushing what it printed
        MPI_Abort(g_comm, 1);
    }
    shut_down_ranks();
    finalize();
}

void enter(int argc, char** argv) {
    if (g_world.active || !under_launcher()) return;
    int provided = 0;
    check_mpi(MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    if (provided < MPI_THREAD_SERIALIZED) {
        MPI_Finalize();
        throw ProcessError(
            "multiproc: mpi: this MPI library does not support MPI_THREAD_SERIALIZED");
    }
    // A worker that rank 0 spawned joins it in one communicator (rank 0 first).
    MPI_Comm parent = MPI_COMM_NULL;
    MPI_Comm_get_parent(&parent);
    if (parent != MPI_COMM_NULL) {
        g_inter = parent;
        check_mpi(MPI_Intercomm_merge(parent, 1, &g_comm), "joining the spawning rank 0");
    }
    MPI_Comm_rank(g_comm, &g_world.rank);
    MPI_Comm_size(g_comm, &g_world.size);
    g_world.active = true;
    for (int i = 1; i < argc; ++i) g_args.emplace_back(argv[i]);
    check_same_build();
    if (g_world.rank != 0) serve_rank();
    std::atexit(at_exit);
}

void check() {
    if (!g_world.active) {
        if (under_launcher())
            throw ProcessError(
                "multiproc: the \"mpi\" context needs mp::init(argc, argv) called first thing "
                "in main, on every rank");
        throw ProcessError(
            "multiproc: the \"mpi\" context needs the program started by an MPI launcher "
            "(mpirun -n 3 ./prog, srun -n 3 ./prog): this process is not an MPI rank");
    }
    if (g_world.size < 2)
        throw ProcessError(
            "multiproc: the \"mpi\" context needs at least 2 ranks (rank 0 runs main, the "
            "others run tasks); the job has 1");
}

std::shared_ptr<WorkerHost> open_host_hook(int processes) {
    check();
    return open_host(processes);
}

int workers_hook() {
    check();
    int n = 0;
    for (int r = 1; r < g_world.size; ++r) n += g_world.ranks[static_cast<std::size_t>(r)].slots;
    return n;
}

constexpr ClusterHooks kHooks{&enter, &check, &open_host_hook, &workers_hook};

// Registered when this library is part of the program: linking multiproc::mpi forces this
// object in (the target's link options name mp_mpi_register).
struct Registrar {
    Registrar() noexcept { register_cluster(&kHooks); }
} g_registrar;

}  // namespace

const World& world() noexcept { return g_world; }

std::string describe_rank(int rank) {
    const auto& r = g_world.ranks.at(static_cast<std::size_t>(rank));
    return "rank " + std::to_string(rank) + " (pid " + std::to_string(r.pid) + " on host " +
           r.host + ")";
}

void doom_job(const std::string& report) noexcept {
    if (g_doomed.exchange(true)) return;
    std::fprintf(stderr, "multiproc: mpi: %s; the job ends (exit code 1)\n", report.c_str());
    try {
        std::thread([] {
            std::this_thread::sleep_for(kAbortGrace);
            std::fflush(nullptr);
            MPI_Abort(g_comm, 1);
        }).detach();
    } catch (...) {
        MPI_Abort(g_comm, 1);
    }
}

MPI_Comm job_comm() noexcept { return g_comm; }

void finalize() noexcept {
    // Spawned workers and rank 0 part first (MPI_Comm_disconnect waits for what is in flight
    // between them): finalizing the TCP links between two jobs without it fails with EPIPE or
    // hangs in Open MPI 4.1's teardown.
    if (g_inter != MPI_COMM_NULL) {
        MPI_Comm_free(&g_comm);
        MPI_Comm_disconnect(&g_inter);
    }
    MPI_Finalize();
}

void spawn(int n) {
    if (!g_world.active)
        throw ProcessError(
            "multiproc: mp::mpi::spawn_workers needs the program started by an MPI launcher "
            "(mpirun -n 1 ./prog) and mp::init(argc, argv) called first thing in main");
    if (n < 1)
        throw std::invalid_argument("multiproc: mp::mpi::spawn_workers: n must be at least 1");
    if (g_world.size != 1)
        throw UsageError("multiproc: mp::mpi::spawn_workers: the job already has " +
                         std::to_string(g_world.size) +
                         " ranks (static workers, or workers spawned before); spawning is for "
                         "a job started with one rank (mpirun -n 1), once");
    if (ranks_in_use())
        throw UsageError(
            "multiproc: mp::mpi::spawn_workers: call it before the first pool on the \"mpi\" "
            "context");
    std::vector<char*> args;
    for (auto& a : g_args) args.push_back(a.data());
    args.push_back(nullptr);
    auto list = sys::loaded_modules();
    const auto* self = sys::main_module(*list);
    std::string program = self ? self->path : std::string();
    std::vector<int> codes(static_cast<std::size_t>(n), MPI_SUCCESS);
    // Errors come back as codes, not as an abort, whatever the handler of MPI_COMM_SELF is.
    MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
    const int rc = MPI_Comm_spawn(program.data(), args.data(), n, MPI_INFO_NULL, 0, MPI_COMM_SELF,
                                  &g_inter, codes.data());
    check_mpi(rc, "MPI_Comm_spawn");
    for (int c : codes) check_mpi(c, "MPI_Comm_spawn (a worker)");
    check_mpi(MPI_Intercomm_merge(g_inter, 0, &g_comm), "joining the spawned workers");
    MPI_Comm_size(g_comm, &g_world.size);
    g_world.ranks.clear();
    check_same_build();
}

}  // namespace mp::detail::mpi

extern "C" {
/// Named by multiproc::mpi's link options so that the linker keeps the registration.
int mp_mpi_register = 0;
}

namespace mp::mpi {

bool active() noexcept { return detail::mpi::world().active; }
void spawn_workers(int n) { detail::mpi::spawn(n); }
int rank() noexcept {
    if (detail::mpi::world().active) return detail::mpi::world().rank;
    // A slot worker of a rank (a local process the rank started) runs that rank's tasks.
    static const int slot_rank = [] {
        const char* v = std::getenv(detail::mpi::kSlotRankVar);
        return v ? static_cast<int>(std::strtol(v, nullptr, 10)) : 0;
    }();
    return slot_rank;
}
int size() noexcept { return detail::mpi::world().size; }

}  // namespace mp::mpi
