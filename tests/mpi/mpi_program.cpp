// The program the MPI tests run under `mpirun -n 3` (tests/mpi/CMakeLists.txt): rank 0 runs one
// scenario, named by argv[1], on the "mpi" context and prints "PASS <scenario>" when every check
// held; the other ranks serve tasks inside mp::init and never get past it.
#include <multiproc/futures.hpp>
#include <multiproc/mpi.hpp>
#include <multiproc/multiproc.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "mpi_program.hpp"

namespace {

using namespace mp_mpi_test;


// Where the task ran: a worker rank, never rank 0.
int rank_of(int) { return mp::mpi::rank(); }

int throws_invalid(int x) {
    if (x == 3) throw std::invalid_argument("three is not allowed");
    return x;
}

struct CustomError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
int throws_custom(int) { throw CustomError("custom failure"); }

struct NotStandard {};
int throws_not_standard(int) { throw NotStandard{}; }

std::vector<unsigned char> large(int mib) {
    std::vector<unsigned char> v(static_cast<std::size_t>(mib) << 20);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<unsigned char>(i % 251);
    return v;
}

// Rank 2 is killed at its first item >= 20 (a task runs in a slot's worker process, a child of
// its rank); the others take a little time each.
int dies_on_rank_2(int x) {
    if (x >= 20 && mp::mpi::rank() == 2) ::kill(::getppid(), SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return x;
}

// Rank 2 is stopped (SIGSTOP: alive, silent) at its first item >= 20.
int stops_on_rank_2(int x) {
    if (x >= 20 && mp::mpi::rank() == 2) ::kill(::getppid(), SIGSTOP);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return x;
}

// The host a task ran on (the UTS namespace's name: the two-host test gives each its own).
std::string host_of(int) {
    std::ifstream f("/proc/sys/kernel/hostname");
    std::string name;
    std::getline(f, name);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return name;
}

// A task of 10 ms: a map of them lasts long enough for the test driver to break the job.
int slow(int x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return x;
}

double sum(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s;
}

// Arrives at a rendezvous in `dir` and waits until `n` tasks are there at once (each a file named
// after its process): true only when they all run at the same time. Bounded (60 s) so that a
// failure does not hang.
bool rendezvous(const std::string& dir, int n) {
    namespace fs = std::filesystem;
    std::ofstream(dir + "/" + std::to_string(::getpid())).put('x');
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < give_up) {
        const auto it = fs::directory_iterator(dir);
        if (std::distance(fs::begin(it), fs::end(it)) >= n) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
}


// Kills the slot's worker process it runs in, the first time it runs item 7 (a marker file in
// `dir` remembers).
int dies_once(const std::string& dir, int x) {
    if (x == 7 && !std::filesystem::exists(dir + "/died")) {
        std::ofstream(dir + "/died").put('x');
        std::raise(SIGKILL);
    }
    return x * x;
}

int kills_its_worker(int) {
    std::raise(SIGKILL);
    return 0;
}


void run_map() {
    mp::Pool pool(std::nullopt, on_mpi());
    const auto r = pool.map(square, iota(1000));
    bool all = r.size() == 1000;
    for (int i = 0; all && i < 1000; ++i) all = r[static_cast<std::size_t>(i)] == i * i;
    check(all, "map(square) over 1000 items");
    const auto where = pool.map(rank_of, iota(200), 1);
    check(std::find(where.begin(), where.end(), 0) == where.end(), "no task ran on rank 0");
    check(std::find(where.begin(), where.end(), 1) != where.end() &&
              std::find(where.begin(), where.end(), 2) != where.end(),
          "both worker ranks ran tasks");
    check(pool.apply_async(square, 12).get() == 144, "apply_async");
    pool.close();
    pool.join();
    // maxtasksperchild: a slot's worker retires after 2 tasks and its rank starts another.
    auto o = on_mpi();
    o.maxtasksperchild = 2;
    retires(o, mp::RestartReason::max_tasks, 10, 6);
    // max_memory_per_child: a slot's worker over the bound (1 byte: every one, after its first
    // batch) is retired by rank 0 at its rank's word, and replaced.
    o = on_mpi();
    o.max_memory_per_child = 1;
    retires(o, mp::RestartReason::max_memory, 3, 2);
    // A second pool after the first: the ranks serve a new session.
    mp::Pool again(std::nullopt, on_mpi());
    check(again.map(square, std::vector<int>{7})[0] == 49, "a second pool");
    again.terminate();
    // parallel_map, with its progress bar, once the pools are gone.
    mp::ParallelOptions po;
    po.context = mp::get_context("mpi");
    po.progress = true;
    const auto p = mp::parallel_map(square, iota(300), po);
    check(p.size() == 300 && p[17] == 289 && p[299] == 299 * 299, "parallel_map");
}

void run_submit() {
    mp::ExecutorOptions o;
    o.context = mp::get_context("mpi");
    mp::ProcessPoolExecutor ex(std::nullopt, o);
    std::vector<mp::Future<int>> fs;
    for (int i = 0; i < 100; ++i) fs.push_back(ex.submit(square, i));
    long total = 0;
    int done = 0;
    for (mp::Future<int>& f : mp::as_completed(fs)) {
        total += f.result();
        ++done;
    }
    check(done == 100 && total == 328350, "submit x 100, as_completed");
}

void run_imap_unordered() {
    mp::Pool pool(std::nullopt, on_mpi());
    std::vector<int> got;
    for (int v : pool.imap_unordered(square, iota(500))) got.push_back(v);
    std::sort(got.begin(), got.end());
    bool all = got.size() == 500;
    for (int i = 0; all && i < 500; ++i) all = got[static_cast<std::size_t>(i)] == i * i;
    check(all, "imap_unordered over 500 items");
}

void run_exceptions() {
    mp::Pool pool(std::nullopt, on_mpi());
    try {
        pool.map(throws_invalid, iota(10));
        check(false, "map rethrows");
    } catch (const std::invalid_argument& e) {
        check(std::string(e.what()) == "three is not allowed", "std::invalid_argument's what()");
    }
    // A type derived from a standard one keeps its standard family, its name in what().
    try {
        pool.apply_async(throws_custom, 1).get();
        check(false, "get rethrows");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        check(what.find("CustomError") != std::string::npos &&
                  what.find("custom failure") != std::string::npos,
              "a std::runtime_error naming CustomError");
    }
    try {
        pool.apply_async(throws_not_standard, 1).get();
        check(false, "get rethrows a non-standard type");
    } catch (const mp::RemoteError& e) {
        check(e.type_name().find("NotStandard") != std::string::npos, "RemoteError's type name");
    }
    check(pool.map(square, std::vector<int>{4})[0] == 16, "the pool works after exceptions");
}

void run_large() {
    mp::Pool pool(std::nullopt, on_mpi());
    const auto results = pool.map(large, std::vector<int>{64, 1, 96});
    bool ok = results.size() == 3 && results[0].size() == (64u << 20) &&
              results[1].size() == (1u << 20) && results[2].size() == (96u << 20);
    for (const auto& v : results)
        for (std::size_t i = 0; ok && i < v.size(); i += 4093) ok = v[i] == i % 251;
    check(ok, "64, 1 and 96 MiB results");
}

// A task whose argument would travel as a descriptor (a vector of 1 MiB or more goes through
// shared memory locally): a clear error, then the ranks serve the next pool.
void run_descriptor() {
    {
        mp::Pool pool(std::nullopt, on_mpi());
        try {
            pool.apply_async(sum, std::vector<double>(1 << 18, 1.0)).get();
            check(false, "a descriptor-carrying task fails");
        } catch (const mp::ProcessError& e) {
            check(std::string(e.what()).find("file descriptor") != std::string::npos,
                  "the error says a descriptor cannot reach a rank");
        }
    }
    mp::Pool next(std::nullopt, on_mpi());
    check(next.apply_async(sum, std::vector<double>(1000, 1.0)).get() == 1000.0,
          "the next pool works");
}

void run_rank_fails(int (*f)(int)) {
    mp::Pool pool(std::nullopt, on_mpi());
    try {
        pool.map(f, iota(400), 1);
        check(false, "map fails when a rank dies");
    } catch (const mp::BrokenProcessPool& e) {
        std::printf("caught mp::BrokenProcessPool: %s\n", e.what());
        std::fflush(stdout);
    }
}


// A pool of every slot: `want` per worker rank, and, when `omp` is given, each task sees
// OMP_NUM_THREADS equal to it.
void run_slots_pool(int want, const char* omp) {
    mp::Pool pool(std::nullopt, on_mpi());
    std::printf("%d workers over %d worker ranks\n", pool.processes(), mp::mpi::size() - 1);
    check(pool.processes() == want * (mp::mpi::size() - 1), "workers = slots x worker ranks");
    std::set<std::string> pids, omps;
    for (const auto& e : pool.map(slot_env, iota(200), 1)) {
        pids.insert(e.substr(0, e.find(' ')));
        omps.insert(e.substr(e.find(' ') + 1));
    }
    check(pids.size() <= static_cast<std::size_t>(pool.processes()), "one process per slot");
    // Counted per slot, though the slots of a rank share its pid.
    const auto st = pool.stats();
    std::size_t counted = 0, tasks = 0;
    for (const auto& w : st.workers) {
        counted += w.tasks_done ? 1 : 0;
        tasks += w.tasks_done;
    }
    std::printf("%zu slots counted tasks, %zu processes ran them\n", counted, pids.size());
    check(tasks == 200 && counted == pids.size(), "every slot's tasks counted as its own");
    for (const auto& o : omps) std::printf("a task saw OMP_NUM_THREADS=%s\n", o.c_str());
    if (omp) check(omps == std::set<std::string>{omp}, "OMP_NUM_THREADS in every slot");
}

// joblib's n_jobs on the "mpi" context counts the job's slots, not rank 0's CPUs.
void parallel_jobs(int slots) {
    mp::ParallelOptions po;
    po.context = mp::get_context("mpi");
    check(mp::Parallel(po).jobs() == slots, "parallel_map's jobs -1: every slot");
    po.jobs = -2;
    check(mp::Parallel(po).jobs() == std::max(1, slots - 1), "jobs -2: all but one");
    po.jobs = -1;
    std::set<std::string> pids;
    for (const auto& e : mp::parallel_map(slot_env, iota(200), po))
        pids.insert(e.substr(0, e.find(' ')));
    std::printf("parallel_map ran on %zu slots\n", pids.size());
    check(!pids.empty() && pids.size() <= static_cast<std::size_t>(slots),
          "parallel_map ran on the slots");
}

// `want` slots per worker rank (argv[2]), OMP_NUM_THREADS `omp` (argv[3]) when given: a pool,
// then parallel_map, take them all.
void run_slots(int want, const char* omp) {
    run_slots_pool(want, omp);
    parallel_jobs(want * (mp::mpi::size() - 1));
}

// `n` tasks at once (argv[2]: the slots of the one worker rank): each waits until all have
// arrived.
void run_concurrent(int n) {
    mp::Pool pool(std::nullopt, on_mpi());
    check(pool.processes() == n, "as many workers as the rank has slots");
    const auto dir = fresh_dir("rendezvous");
    std::vector<std::tuple<std::string, int>> args(static_cast<std::size_t>(n), {dir, n});
    const auto met = pool.starmap(rendezvous, args, 1);
    std::printf("%d tasks met at once on %d worker ranks\n",
                static_cast<int>(std::count(met.begin(), met.end(), true)), mp::mpi::size() - 1);
    check(std::count(met.begin(), met.end(), true) == n, "every task met the others at once");
    std::filesystem::remove_all(dir);
    // In order, across slots.
    const auto r = pool.map(square, iota(2000), 3);
    bool ordered = r.size() == 2000;
    for (int i = 0; ordered && i < 2000; ++i) ordered = r[static_cast<std::size_t>(i)] == i * i;
    check(ordered, "map's results in order");
}


// A slot's worker SIGKILLed mid-map: its task is retried (retries = 1) or fails (retries = 0)
// as in a local pool; the rank, the pool and the job go on.
void run_slot_dies() {
    const auto dir = fresh_dir("slot_dies");
    {
        auto o = on_mpi();
        o.retries = 1;
        mp::Pool pool(std::nullopt, o);
        std::vector<std::tuple<std::string, int>> args;
        for (int i = 0; i < 40; ++i) args.emplace_back(dir, i);
        const auto r = pool.starmap(dies_once, args, 1);
        bool ok = r.size() == 40;
        for (int i = 0; ok && i < 40; ++i) ok = r[static_cast<std::size_t>(i)] == i * i;
        check(ok, "the lost task was retried, every result in order");
        check(std::filesystem::exists(dir + "/died"), "a slot's worker was killed");
        const auto st = pool.stats();
        std::printf("retried %zu, restarts %zu\n", st.tasks_retried, st.total_restarts());
        check(st.total_restarts() == 1, "one slot's worker replaced");
    }
    mp::Pool pool(std::nullopt, on_mpi());
    try {
        pool.apply_async(kills_its_worker, 1).get();
        check(false, "the task that kills its worker fails");
    } catch (const mp::BrokenProcessPool& e) {
        std::printf("caught mp::BrokenProcessPool: %s\n", e.what());
        const std::string what = e.what();
        check(what.find("was killed by signal 9") != std::string::npos &&
                  what.find("of MPI rank 1") != std::string::npos,
              "the error names the signal, the slot and the rank");
    }
    check(pool.map(square, iota(100))[99] == 99 * 99, "the pool works after the death");
    std::filesystem::remove_all(dir);
}

// Tasks of every worker rank, counted by the host each ran on (tests/mpi/two_hosts.sh).
void run_hosts() {
    mp::Pool pool(std::nullopt, on_mpi());
    std::map<std::string, int> by_host;
    for (const auto& h : pool.map(host_of, iota(300), 1)) ++by_host[h];
    std::printf("rank 0 runs on host %s; tasks by host:", host_of(0).c_str());
    for (const auto& [h, n] : by_host) std::printf(" %s=%d", h.c_str(), n);
    std::printf("\n");
    check(by_host.size() >= 2, "tasks ran on two hosts or more");
}

// A long map that something outside breaks (tests/mpi/two_hosts.sh kills a rank or cuts a
// link once "20 results" is printed): the map must end in mp::BrokenProcessPool.
void run_until_broken() {
    mp::Pool pool(std::nullopt, on_mpi());
    int n = 0;
    try {
        for (int v : pool.imap(slow, iota(20000), 1)) {
            if (++n != 20) continue;
            std::printf("%d results (the last %d)\n", n, v);
            std::fflush(stdout);
        }
        check(false, "the map is broken before its end");
    } catch (const mp::BrokenProcessPool& e) {
        std::printf("caught mp::BrokenProcessPool after %d results: %s\n", n, e.what());
        std::fflush(stdout);
    }
}

// A job started with one rank spawns its two workers on request (MPI_Comm_spawn).
void run_spawn(int (*f)(int)) {
    mp::mpi::spawn_workers(2);
    check(mp::mpi::size() == 3, "three ranks after spawning two");
    try {
        mp::mpi::spawn_workers(1);
        check(false, "a second spawn is refused");
    } catch (const mp::UsageError&) {
    }
    if (f) return run_rank_fails(f);
    run_map();
}

// Static workers (mpirun -n 3): spawning is refused, and the ranks still serve.
void run_spawn_static() {
    try {
        mp::mpi::spawn_workers(2);
        check(false, "spawn_workers is refused in a job with static workers");
    } catch (const mp::UsageError& e) {
        check(std::string(e.what()).find("static") != std::string::npos, "the error says why");
    }
    mp::Pool pool(std::nullopt, on_mpi());
    check(pool.map(square, std::vector<int>{5})[0] == 25, "the static ranks serve");
}

}  // namespace

int main(int argc, char** argv) {
    try {
        mp::init(argc, argv);
    } catch (const mp::ProcessError& e) {
        std::printf("mp::init: %s\n", e.what());
        return 1;
    }
    const std::string what = argc > 1 ? argv[1] : "";
    try {
        if (what == "map") run_map();
        else if (what == "submit") run_submit();
        else if (what == "imap_unordered") run_imap_unordered();
        else if (what == "exceptions") run_exceptions();
        else if (what == "large") run_large();
        else if (what == "descriptor") run_descriptor();
        else if (what == "rank_dies") run_rank_fails(dies_on_rank_2);
        else if (what == "rank_silent") run_rank_fails(stops_on_rank_2);
        else if (what == "hosts") run_hosts();
        else if (what == "slots" && argc > 2)
            run_slots(std::atoi(argv[2]), argc > 3 ? argv[3] : nullptr);
        else if (what == "concurrent" && argc > 2) run_concurrent(std::atoi(argv[2]));
        else if (what == "slot_dies") run_slot_dies();
        else if (what == "prefetch") run_prefetch();
        else if (what == "probe") run_probe();
        else if (what == "cancel") run_cancel();
        else if (what == "timeout") run_timeout();
        else if (what == "spawn") run_spawn(nullptr);
        else if (what == "spawn_rank_dies") run_spawn(dies_on_rank_2);
        else if (what == "spawn_static") run_spawn_static();
        else if (what == "until_broken") run_until_broken();
        else if (what == "build") check(mp::mpi::size() == 3, "three ranks");
#ifdef MP_TEST_OTHER_BUILD
        // Another build of this program (tests/mpi/CMakeLists.txt): different bytes, so a
        // different build id.
        else if (what == "other") std::printf("the other build\n");
#endif
        else check(false, "a known scenario");
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
    if (failure_count()) return 1;
    std::printf("PASS %s\n", what.c_str());
    return 0;
}
