// A slot's worker's life under the pool's options, over MPI: prefetch and probing, retirement
// (maxtasksperchild, max_memory_per_child), cancel(mp::force) and task_timeout. Scenarios of the
// MPI tests' program (mpi_program.hpp), each a CTest case (tests/mpi/CMakeLists.txt).
#include <multiproc/futures.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "mpi_program.hpp"

namespace mp_mpi_test {

namespace {

// Holds (hold_until) for item 0, squares the others.
int held_square(const std::string& go, int x) { return x == 0 ? hold_until(go) - 1 : x * x; }

// Marks that it started (a file in `dir` holding its pid), then sleeps a minute: until killed.
int marks_then_hangs(const std::string& dir) {
    { std::ofstream(dir + "/pid") << ::getpid(); }
    std::filesystem::rename(dir + "/pid", dir + "/started");
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return -1;
}

}  // namespace

// A pool whose slots' workers retire (options `o`): 20 tasks of chunksize 1 run in at least
// `processes` worker processes, at least `retired` retirements are counted as `why`, and the
// pool goes on.
void retires(const mp::PoolOptions& o, mp::RestartReason why, std::size_t processes,
             std::size_t retired) {
    mp::Pool pool(std::nullopt, o);
    std::set<std::string> pids;
    for (const auto& e : pool.map(slot_env, iota(20), 1)) pids.insert(e.substr(0, e.find(' ')));
    const auto st = pool.stats();
    std::printf("%s: %zu processes ran 20 tasks, %zu retired\n", mp::to_string(why), pids.size(),
                st.restarts_for(why));
    check(pids.size() >= processes, "retired workers replaced by new processes");
    check(st.restarts_for(why) >= retired, "retirements counted");
    check(pool.map(square, iota(50), 1).back() == 49 * 49, "the pool goes on");
}

// A rank's slot is several hops from rank 0's engine, so it holds three prefetched batches
// besides the running one (a local worker holds one): with its only worker held by a task, four
// of six single tasks are in flight, the other two wait on rank 0.
void run_prefetch() {
    const auto dir = fresh_dir("prefetch");
    const auto go = dir + "/go";
    mp::Pool pool(1, on_mpi());
    std::vector<mp::AsyncResult<int>> rs;
    rs.push_back(pool.apply_async(hold_until, go));
    for (int i = 0; i < 5; ++i) rs.push_back(pool.apply_async(square, i));
    mp::PoolStats s = pool.stats();
    for (int i = 0; i < 500 && s.in_flight_tasks < 4; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        s = pool.stats();
    }
    std::printf("in flight %zu, queued %zu\n", s.in_flight_tasks, s.queued_items);
    check(s.in_flight_tasks == 4, "four batches in flight at the held worker");
    { std::ofstream(go).put('1'); }
    check(rs[0].get() == 1, "the held task ran to its end");
    for (int i = 0; i < 5; ++i)
        check(rs[static_cast<std::size_t>(i) + 1].get() == i * i, "results");
    std::filesystem::remove_all(dir);
}


// While a large map's cost per item is not known (no result has come back), a slot holds only
// the batch it runs: with its only worker held by the first item, one task is in flight and the
// other items wait on rank 0 for the chunk sizes the first result gives. (A map that the blind
// batches of every worker's full queue cover, 4 x 1024 items a worker, goes out at once.)
void run_probe() {
    const auto dir = fresh_dir("probe");
    const auto go = dir + "/go";
    mp::Pool pool(1, on_mpi());
    std::vector<std::tuple<std::string, int>> args;
    const int n = 5000;
    for (int i = 0; i < n; ++i) args.emplace_back(go, i);
    auto r = pool.starmap_async(held_square, args);
    mp::PoolStats s = pool.stats();
    for (int i = 0; i < 500 && s.in_flight_tasks < 1; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        s = pool.stats();
    }
    // Time for more batches to reach the slot, were they sent.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    s = pool.stats();
    std::printf("in flight %zu, queued %zu\n", s.in_flight_tasks, s.queued_items);
    check(s.in_flight_tasks == 1, "one task in flight while the cost is unknown");
    { std::ofstream(go).put('1'); }
    const auto out = r.get();
    bool ok = out.size() == static_cast<std::size_t>(n);
    for (int i = 0; ok && i < n; ++i) ok = out[static_cast<std::size_t>(i)] == i * i;
    check(ok, "every result in order");
    std::filesystem::remove_all(dir);
}


// Future::cancel(mp::force) over MPI: the rank kills the slot's worker running the task, the
// future is cancelled, the task queued behind it runs on the slot's next worker.
void run_cancel() {
    const auto dir = fresh_dir("cancel");
    mp::ExecutorOptions o;
    o.context = mp::get_context("mpi");
    mp::ProcessPoolExecutor ex(1, o);
    auto victim = ex.submit(marks_then_hangs, dir);
    check(hold_until(dir + "/started") == 1, "the task started");
    auto queued = ex.submit(square, 3);
    check(!victim.cancel(), "a plain cancel leaves a running task alone");
    check(victim.cancel(mp::force), "cancel(mp::force) of a running task");
    check(victim.cancelled(), "cancelled");
    try {
        static_cast<void>(victim.result());
        check(false, "a cancelled future's result throws");
    } catch (const mp::CancelledError&) {
    }
    check(queued.result(std::chrono::seconds(60)) == 9, "the next task ran");
    check(ex.submit(square, 4).result(std::chrono::seconds(60)) == 16, "the executor goes on");
    const auto st = ex.stats();
    std::printf("restarts: cancelled %zu\n", st.restarts_for(mp::RestartReason::cancelled));
    check(st.restarts_for(mp::RestartReason::cancelled) == 1, "the killed worker counted");
    std::filesystem::remove_all(dir);
}

// task_timeout over MPI: the rank kills the slot's worker whose task overran its limit, rank 0
// fails that task with mp::TimeoutError, the task queued behind it runs on the slot's next
// worker; tasks within their limits (a map) are not touched.
void run_timeout() {
    const auto dir = fresh_dir("timeout");
    auto o = on_mpi();
    o.task_timeout = std::chrono::milliseconds(500);
    mp::Pool pool(1, o);
    auto slow = pool.apply_async(marks_then_hangs, dir);
    auto next = pool.apply_async(square, 5);
    try {
        static_cast<void>(slow.get());
        check(false, "an overrunning task fails");
    } catch (const mp::TimeoutError& e) {
        std::printf("TimeoutError: %s\n", e.what());
        check(std::string(e.what()).find("timed out after 500 ms") != std::string::npos,
              "the error names the limit");
        std::string pid;
        std::ifstream(dir + "/started") >> pid;
        check(!pid.empty() &&
                  std::string(e.what()).find("worker process " + pid + " ") != std::string::npos,
              "the error names the slot's worker process");
    }
    check(next.get() == 25, "the task behind it ran");
    check(pool.map(square, iota(100), 1).back() == 99 * 99, "tasks within their limits run");
    const auto st = pool.stats();
    check(st.restarts_for(mp::RestartReason::timeout) == 1, "one worker killed for a timeout");
    std::filesystem::remove_all(dir);
}

}  // namespace mp_mpi_test
