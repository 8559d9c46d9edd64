// The timeline (mp::trace) and the performance report (mp::performance_report), run once per
// start method: what a traced pool records (every task once, with its function, outcome and
// worker; worker starts and deaths; retries), and that nothing is recorded when tracing is off.
// The report's page itself is checked in Chromium by tests/trace_browser_test.py.
#include "multiproc/trace.hpp"
#include "helpers/text_file.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/pool.hpp"

// Task functions of external linkage: the timeline names them by their dynamic symbol.
int trace_test_square(int x) {
    if (x % 10 == 7) throw std::out_of_range("seven");
    return x * x;
}

int trace_test_crash(int code) { std::_Exit(code); }

namespace {

using mp::test::count;
using mp::test::take_file;

std::string temp_path(const std::string& suffix) {
    return "/tmp/mp-trace-test-" + std::to_string(mp::current_process().pid()) + suffix;
}

class TraceTest : public mp::test::StartMethodTest {
protected:
    mp::PoolOptions options(int retries = 0) const {
        mp::PoolOptions o;
        o.context = ctx();
        o.retries = retries;
        return o;
    }
    // Runs 30 calls of trace_test_square (3 raise) and returns how many raised.
    static int run_squares(mp::Pool& pool) {
        std::vector<mp::AsyncResult<int>> rs;
        for (int i = 0; i < 30; ++i) rs.push_back(pool.apply_async(trace_test_square, i));
        int raised = 0;
        for (auto& r : rs) {
            try {
                r.get();
            } catch (const std::out_of_range&) {
                ++raised;
            }
        }
        return raised;
    }
};

TEST_P(TraceTest, TimelineHasEveryTaskOnceWithItsFunctionAndOutcome) {
    const std::string path = temp_path(".json");
    mp::trace::start(path);
    EXPECT_TRUE(mp::trace::active());
    {
        mp::Pool pool(2, options());
        EXPECT_EQ(run_squares(pool), 3);
        pool.close();
        pool.join();
    }
    mp::trace::stop();
    EXPECT_FALSE(mp::trace::active());
    const std::string json = take_file(path);
    EXPECT_EQ(count(json, "\"cat\":\"task\""), 30u);
    EXPECT_EQ(count(json, "\"name\":\"trace_test_square\""), 30u);
    EXPECT_EQ(count(json, "\"outcome\":\"exception\""), 3u);
    EXPECT_EQ(count(json, "\"detail\":\"std::out_of_range\""), 3u);
    // One track per worker and one for the supervisor, each named once.
    EXPECT_EQ(count(json, "\"name\":\"process_name\""), 3u);
    EXPECT_EQ(count(json, "\"method\":\"" + GetParam() + "\""), 2u);
    // Under forkserver, each worker is one request to the server, on the supervisor's track.
    EXPECT_EQ(count(json, "\"cat\":\"forkserver\""), GetParam() == "forkserver" ? 2u : 0u);
}

TEST_P(TraceTest, WorkersStartedBeforeTheTimelineAreTraced) {
    mp::Pool pool(2, options());
    EXPECT_EQ(pool.apply(trace_test_square, 3), 9);  // the workers run before tracing starts
    const std::string path = temp_path("-late.json");
    mp::trace::start(path);
    EXPECT_EQ(run_squares(pool), 3);
    mp::trace::stop();
    const std::string json = take_file(path);
    EXPECT_EQ(count(json, "\"cat\":\"task\""), 30u);
}

TEST_P(TraceTest, AWorkerDeathIsATaskThatDiedAndARetry) {
    const std::string path = temp_path("-death.json");
    mp::trace::start(path);
    {
        mp::Pool pool(2, options(1));
        auto r = pool.apply_async(trace_test_crash, 3);
        EXPECT_THROW(r.get(), mp::BrokenProcessPool);  // killed 2 workers: quarantined
        pool.close();
        pool.join();
    }
    mp::trace::stop();
    const std::string json = take_file(path);
    EXPECT_EQ(count(json, "\"outcome\":\"died\""), 2u);
    EXPECT_EQ(count(json, "\"detail\":\"exited with code 3\""), 2u);
    EXPECT_EQ(count(json, "\"cat\":\"retry\""), 1u);
    EXPECT_EQ(count(json, "\"cat\":\"quarantine\""), 1u);
    EXPECT_EQ(count(json, "\"attempt\":2"), 1u);
}

TEST_P(TraceTest, ReportScopeWritesOneSelfContainedPage) {
    const std::string path = temp_path(".html");
    {
        mp::performance_report report(path);
        mp::Pool pool(2, options());
        EXPECT_EQ(run_squares(pool), 3);
        pool.close();
        pool.join();
    }
    EXPECT_FALSE(mp::trace::active());
    const std::string html = take_file(path);
    EXPECT_NE(html.find("\"counts\":{\"tasks\":30,\"ok\":27,\"exception\":3,\"died\":0"),
              std::string::npos);
    EXPECT_EQ(html.find("src=\"http"), std::string::npos);  // nothing loaded from elsewhere
    EXPECT_EQ(html.find("<script src"), std::string::npos);
}

TEST_P(TraceTest, NothingIsRecordedWhenTracingIsOff) {
    const std::string path = temp_path("-off.json");
    mp::trace::stop();  // no timeline: nothing to do
    mp::Pool pool(2, options());
    EXPECT_EQ(run_squares(pool), 3);
    EXPECT_FALSE(mp::trace::active());
    EXPECT_FALSE(std::ifstream(path).good());
}

INSTANTIATE_TEST_SUITE_P(StartMethods, TraceTest, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
