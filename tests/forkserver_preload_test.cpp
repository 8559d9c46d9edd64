// mp::set_forkserver_preload, once per start method: a forkserver runs the preload once before
// it serves and its children inherit what it built; fork and spawn ignore it (as Python does);
// a preload that throws or exits is start()'s clear error, every time, never a hang.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/context.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/process.hpp"

namespace {

using namespace std::chrono_literals;

// What the preload builds: a table, and how many times this process (or the one it was forked
// from) built it.
std::vector<std::uint64_t> g_table;
int g_builds = 0;

// The preload: fills the table and tells the test, once per run, that it ran.
void fill_table(std::size_t n, mp::Connection ran) {
    g_table.resize(n);
    for (std::size_t i = 0; i < n; ++i) g_table[i] = std::uint64_t{i} * i;
    ++g_builds;
    ran.send(std::string("built"));
}

void throw_in_preload(std::string what) { throw std::invalid_argument(what); }
void exit_in_preload(int code) { std::exit(code); }

// A child: what it sees of the table, without building it.
void report_table(mp::Connection c) {
    std::uint64_t sum = 0;
    for (std::uint64_t v : g_table) sum += v;
    c.send(std::vector<std::uint64_t>{g_table.size(), static_cast<std::uint64_t>(g_builds), sum});
}

void nothing() {}

// Starts p, which must fail with an mp::ProcessError whose what() holds each of `parts`.
void expect_start_fails(mp::Process& p, std::initializer_list<const char*> parts) {
    try {
        p.start();
        ADD_FAILURE() << "start() succeeded despite the preload";
    } catch (const mp::ProcessError& e) {
        const std::string what = e.what();
        for (const char* part : parts) EXPECT_NE(what.find(part), std::string::npos) << what;
    }
}

class Preload : public mp::test::StartMethodTest {
protected:
    // The preload applies to a server started after it was set: none may be running yet.
    void SetUp() override { mp::detail::stop_forkserver(); }
    void TearDown() override { mp::set_forkserver_preload(); }
    bool forkserver() const { return GetParam() == "forkserver"; }
};

TEST_P(Preload, ChildrenInheritWhatThePreloadBuiltWithoutBuildingItAgain) {
    constexpr std::size_t n = 100000;
    auto [ran_r, ran_w] = mp::Pipe(false);
    mp::set_forkserver_preload(fill_table, n, ran_w);
    ran_w.close();  // the preload holds its own copy
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += std::uint64_t{i} * i;
    for (int round = 0; round < 3; ++round) {
        auto [r, w] = mp::Pipe(false);
        mp::Process p = start(report_table, w);
        const auto seen = r.recv<std::vector<std::uint64_t>>();
        join_ok(p);
        if (forkserver())
            EXPECT_EQ(seen, (std::vector<std::uint64_t>{n, 1, sum})) << "round " << round;
        else  // fork and spawn children never run it, and this process never did
            EXPECT_EQ(seen, (std::vector<std::uint64_t>{0, 0, 0})) << "round " << round;
    }
    EXPECT_TRUE(g_table.empty());  // the preload never runs in the program itself
    // One server, one run of the preload (forkserver); none under fork and spawn.
    if (forkserver()) {
        ASSERT_TRUE(ran_r.poll(30s));
        EXPECT_EQ(ran_r.recv<std::string>(), "built");
    }
    EXPECT_FALSE(ran_r.poll(0s));
    // A server started again (the previous one stopped) runs it again.
    mp::detail::stop_forkserver();
    mp::Process again = start(nothing);
    join_ok(again);
    if (forkserver()) {
        ASSERT_TRUE(ran_r.poll(30s));
        EXPECT_EQ(ran_r.recv<std::string>(), "built");
    }
    EXPECT_FALSE(ran_r.poll(0s));
}

TEST_P(Preload, AThrowingPreloadIsStartsErrorEveryTime) {
    mp::set_forkserver_preload(throw_in_preload, std::string("no tables here"));
    for (int attempt = 0; attempt < 2; ++attempt) {
        mp::Process p = ctx().Process(nothing);
        if (!forkserver()) {  // ignored under fork and spawn
            p.start();
            join_ok(p);
            continue;
        }
        expect_start_fails(p, {"preload", "std::invalid_argument: no tables here"});
        EXPECT_EQ(mp::detail::forkserver_pid(), 0);  // the failed server was reaped
    }
    mp::set_forkserver_preload();  // cleared: the next server serves
    mp::Process p = start(nothing);
    join_ok(p);
}

TEST_P(Preload, APreloadThatExitsIsStartsError) {
    mp::set_forkserver_preload(exit_in_preload, 3);
    mp::Process p = ctx().Process(nothing);
    if (!forkserver()) {
        p.start();
        join_ok(p);
        return;
    }
    expect_start_fails(p, {"exited with code 3 while running its preload"});
    EXPECT_EQ(mp::detail::forkserver_pid(), 0);
}

TEST(PreloadSet, ASecondCallReplacesTheFirst) {
    mp::detail::stop_forkserver();
    auto [ran_r, ran_w] = mp::Pipe(false);
    mp::set_forkserver_preload(throw_in_preload, std::string("replaced"));
    mp::set_forkserver_preload(fill_table, std::size_t{10}, ran_w);
    mp::Process p = mp::get_context("forkserver").Process(nothing);
    p.start();
    p.join(60s);
    EXPECT_EQ(p.exitcode(), std::optional<int>(0));
    ASSERT_TRUE(ran_r.poll(30s));
    EXPECT_EQ(ran_r.recv<std::string>(), "built");
    mp::set_forkserver_preload();
}

// Python's ctx.set_forkserver_preload: one forkserver serves every context, so a context's call
// sets the same preload.
TEST(PreloadSet, AContextSetsTheSamePreload) {
    mp::detail::stop_forkserver();
    auto [ran_r, ran_w] = mp::Pipe(false);
    const mp::Context ctx = mp::get_context("forkserver");
    ctx.set_forkserver_preload(fill_table, std::size_t{10}, ran_w);
    auto [r, w] = mp::Pipe(false);
    mp::Process p = ctx.Process(report_table, w);
    p.start();
    EXPECT_EQ(r.recv<std::vector<std::uint64_t>>(), (std::vector<std::uint64_t>{10, 1, 285}));
    p.join(60s);
    EXPECT_EQ(p.exitcode(), std::optional<int>(0));
    ASSERT_TRUE(ran_r.poll(30s));
    EXPECT_EQ(ran_r.recv<std::string>(), "built");
    mp::set_forkserver_preload();
}

INSTANTIATE_TEST_SUITE_P(StartMethods, Preload, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
