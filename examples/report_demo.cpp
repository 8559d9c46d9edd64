// The performance report's demo: a pool of 3 workers runs 120 `simulate` tasks (5 of which
// raise std::invalid_argument), 40 `checksum` tasks and one `flaky` task that kills its worker
// the first time it runs (retries = 1: it runs again on the replacement and succeeds).
//
//   ./report_demo [start-method] [report.html]
//
// With a report path, the run is recorded by an mp::performance_report scope; without one,
// MP_REPORT=report.html and MP_TRACE=trace.json in the environment do the same. The README's
// screenshot is this demo's report; tests/trace_browser_test.py checks it in Chromium.
#include <multiproc/multiproc.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

// The tasks are functions of external linkage, so that the report can name them (a static
// function has no dynamic symbol: the report shows its offset instead).

namespace {

// Busy for about `us` microseconds (a task's CPU work).
std::uint64_t spin(int us) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
    std::uint64_t x = 0;
    while (std::chrono::steady_clock::now() < until) x = x * 6364136223846793005ULL + 1;
    return x;
}

}  // namespace

int simulate(int i) {
    spin(1500 + (i % 7) * 400);
    if (i % 25 == 13) throw std::invalid_argument("item " + std::to_string(i) + " is invalid");
    return i * i;
}

std::uint64_t checksum(int i) { return spin(2500 + (i % 3) * 1000) ^ static_cast<unsigned>(i); }

// Kills its worker the first time (the marker file does not exist yet), succeeds the second.
int flaky(std::string marker) {
    spin(1500);
    if (std::FILE* f = std::fopen(marker.c_str(), "r")) {
        std::fclose(f);
        return 1;
    }
    if (std::FILE* f = std::fopen(marker.c_str(), "w")) std::fclose(f);
    std::abort();
}

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc > 1) mp::set_start_method(argv[1]);
    std::optional<mp::performance_report> report;
    if (argc > 2) report.emplace(argv[2]);

    const std::string marker = "/tmp/mp-report-demo-" + std::to_string(mp::current_process().pid());
    std::remove(marker.c_str());
    mp::PoolOptions opts;
    opts.retries = 1;
    mp::Pool pool(3, opts);
    std::vector<mp::AsyncResult<int>> sims;
    std::vector<mp::AsyncResult<std::uint64_t>> sums;
    auto crash = pool.apply_async(flaky, marker);
    for (int i = 0; i < 120; ++i) {
        sims.push_back(pool.apply_async(simulate, i));
        if (i % 3 == 0) sums.push_back(pool.apply_async(checksum, i));
    }
    int failed = 0;
    for (auto& r : sims) {
        try {
            r.get();
        } catch (const std::invalid_argument&) {
            ++failed;
        }
    }
    for (auto& r : sums) r.get();
    const int retried = crash.get();
    pool.close();
    pool.join();
    std::remove(marker.c_str());
    std::printf("report_demo: %zu tasks, %d raised, flaky task %s after its worker died\n",
                sims.size() + sums.size() + 1, failed, retried ? "succeeded" : "failed");
    return failed == 5 && retried == 1 ? 0 : 1;
}
