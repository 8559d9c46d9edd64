// mp::get_logger / mp::log_to_stderr: levels, handlers, the default line, and the lifecycle
// messages of processes, pools, the forkserver and managers, under every start method.
#include "multiproc/logging.hpp"

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "helpers/capture.hpp"
#include "helpers/idle_thread.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/managers.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/process.hpp"
#include "popen.hpp"

namespace {

int square(int x) { return x * x; }

// What the test handler received (handlers live as long as the process: a static sink).
struct Received {
    std::mutex m;
    std::vector<std::pair<mp::LogLevel, std::string>> lines;

    void add(mp::LogLevel l, std::string_view s) {
        std::lock_guard lk(m);
        lines.emplace_back(l, std::string(s));
    }
    // How many received lines contain `part` (at `level`, if given).
    std::size_t count(const std::string& part, std::optional<mp::LogLevel> level = {}) {
        std::lock_guard lk(m);
        std::size_t n = 0;
        for (auto& [l, s] : lines)
            if (s.find(part) != std::string::npos && (!level || l == *level)) ++n;
        return n;
    }
    std::string all() {
        std::lock_guard lk(m);
        std::string out;
        for (auto& [l, s] : lines) out += std::string(mp::to_string(l)) + ": " + s + "\n";
        return out;
    }
};
Received g_received;

// Every test starts from the defaults and leaves them behind.
class LoggingTest : public mp::test::StartMethodTest {
protected:
    void SetUp() override {
        {
            std::lock_guard lk(g_received.m);
            g_received.lines.clear();
        }
        mp::get_logger().set_handler([](mp::LogLevel l, std::string_view s) {
            g_received.add(l, s);
        });
    }
    mp::PoolOptions pool_opts() const { return with_context<mp::PoolOptions>(); }
    void TearDown() override {
        mp::get_logger().reset_handler();
        mp::get_logger().set_level(mp::LogLevel::warning);
    }
};

TEST_P(LoggingTest, ProcessStartAndExitAtInfo) {
    mp::get_logger().set_level(mp::LogLevel::info);
    auto p = start([] {});
    join_ok(p);
    const std::string pid = std::to_string(*p.pid());
    EXPECT_EQ(g_received.count("(pid " + pid + ") started with start method " + GetParam(),
                               mp::LogLevel::info),
              1u)
        << g_received.all();
    EXPECT_EQ(g_received.count("(pid " + pid + ") exited with code 0", mp::LogLevel::info), 1u)
        << g_received.all();
}

TEST_P(LoggingTest, NothingBelowTheLevel) {
    ASSERT_EQ(mp::get_logger().level(), mp::LogLevel::warning);  // the default
    EXPECT_FALSE(mp::get_logger().is_enabled_for(mp::LogLevel::info));
    {
        mp::Pool pool(2, pool_opts());
        EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
        pool.close();
        pool.join();
    }
    auto p = start([] {});
    join_ok(p);
    EXPECT_EQ(g_received.count(""), 0u) << g_received.all();
}

TEST_P(LoggingTest, PoolLifecycle) {
    mp::get_logger().set_level(mp::LogLevel::info);
    {
        mp::Pool pool(2, pool_opts());
        EXPECT_EQ(pool.apply(square, 3), 9);
        pool.close();
        pool.join();
    }
    EXPECT_EQ(g_received.count("mp::Pool: started 2 worker processes (start method " + GetParam()),
              1u)
        << g_received.all();
    EXPECT_EQ(g_received.count("mp::Pool: closing"), 1u) << g_received.all();
    {
        mp::Pool pool(1, pool_opts());
        pool.terminate();
    }
    EXPECT_EQ(g_received.count("mp::Pool: terminating"), 1u) << g_received.all();
}

// A child logs to the stderr it inherited. Under fork it inherits the parent's level (and
// handler: the test's handler, which in the child collects into the child's copy); under spawn
// and forkserver it starts from the defaults (MP_LOG unset: warning, to stderr).
TEST_P(LoggingTest, ChildLogsToItsInheritedStderr) {
    mp::log_to_stderr(mp::LogLevel::info);
    mp::test::Capture err(2);
    auto p = start([] {
        mp::get_logger().info("info from the child");
        mp::get_logger().error("error from the child");
    });
    join_ok(p);
    const std::string out = err.finish();
    const std::string name = p.name();
    EXPECT_NE(out.find("[ERROR/" + name + "] error from the child\n"), std::string::npos) << out;
    const bool info_shown =
        out.find("[INFO/" + name + "] info from the child\n") != std::string::npos;
    EXPECT_EQ(info_shown, GetParam() == "fork") << out;
}

TEST_P(LoggingTest, ManagerServerAndClient) {
    mp::get_logger().set_level(mp::LogLevel::info);
    {
        mp::Manager m(ctx());
        auto d = m.dict<std::string, int>();
        d.set("a", 1);
        EXPECT_EQ(g_received.count("manager server started (pid " + std::to_string(*m.pid())), 1u)
            << g_received.all();
        auto other = mp::Manager::connect(m.address());
        EXPECT_EQ(g_received.count("manager client connected to"), 1u) << g_received.all();
        m.shutdown();
    }
    EXPECT_EQ(g_received.count("manager server (pid"), 1u) << g_received.all();
    EXPECT_EQ(g_received.count("stopped"), 1u) << g_received.all();
}

INSTANTIATE_TEST_SUITE_P(StartMethods, LoggingTest,
                         ::testing::Values("fork", "spawn", "forkserver"));

TEST(Logging, DefaultLineOnStderr) {
    mp::log_to_stderr(mp::LogLevel::debug);
    std::string out;
    {
        mp::test::Capture err(2);
        mp::get_logger().debug("hello");
        mp::get_logger().critical("bye");
        out = err.finish();
    }
    mp::get_logger().set_level(mp::LogLevel::warning);
    EXPECT_EQ(out, "[DEBUG/MainProcess] hello\n[CRITICAL/MainProcess] bye\n");
}

TEST(Logging, ForkserverStartAndRequests) {
    mp::detail::stop_forkserver();
    mp::get_logger().set_handler([](mp::LogLevel l, std::string_view s) { g_received.add(l, s); });
    mp::get_logger().set_level(mp::LogLevel::debug);
    {
        std::lock_guard lk(g_received.m);
        g_received.lines.clear();
    }
    auto p = mp::get_context("forkserver").Process([] {});
    p.start();
    p.join();
    mp::detail::stop_forkserver();
    mp::get_logger().reset_handler();
    mp::get_logger().set_level(mp::LogLevel::warning);
    EXPECT_EQ(g_received.count("forkserver started (pid", mp::LogLevel::info), 1u)
        << g_received.all();
    EXPECT_EQ(g_received.count("forked child pid " + std::to_string(*p.pid()), mp::LogLevel::debug),
              1u)
        << g_received.all();
    EXPECT_EQ(g_received.count(") stopped", mp::LogLevel::info), 1u) << g_received.all();
}

// The fork-with-threads warning reaches a user's handler.
TEST(Logging, ForkWarningGoesThroughTheLogger) {
    mp::detail::reset_fork_warning_for_testing();
    mp::get_logger().set_handler([](mp::LogLevel l, std::string_view s) { g_received.add(l, s); });
    {
        std::lock_guard lk(g_received.m);
        g_received.lines.clear();
    }
    {
        mp::test::IdleThread other;
        auto p = mp::get_context("fork").Process([] {});
        p.start();
        p.join();
    }
    mp::get_logger().reset_handler();
    EXPECT_EQ(g_received.count("is multi-threaded", mp::LogLevel::warning), 1u) << g_received.all();
}

}  // namespace
