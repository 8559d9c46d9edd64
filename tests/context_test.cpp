// Start methods and contexts: the global default, set_start_method, get_context.
#include "multiproc/context.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "helpers/start_method_test.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/process.hpp"

namespace {

// Every test starts from "nothing set" (the global default is process-wide state).
class ContextTest : public ::testing::Test {
protected:
    void SetUp() override { mp::set_start_method("", true); }
    void TearDown() override { mp::set_start_method("", true); }
};

TEST_F(ContextTest, DefaultIsForkAndGetStartMethodFixesIt) {
    EXPECT_EQ(mp::get_start_method(true), std::nullopt);
    EXPECT_EQ(mp::get_start_method(), "fork");
    EXPECT_EQ(mp::get_start_method(true), "fork");  // now fixed
    EXPECT_THROW(mp::set_start_method("fork"), mp::UsageError);
}

TEST_F(ContextTest, SetStartMethodOnceUnlessForced) {
    mp::set_start_method("fork");
    EXPECT_EQ(mp::get_start_method(true), "fork");
    try {
        mp::set_start_method("fork");
        ADD_FAILURE() << "a second set_start_method without force must throw";
    } catch (const mp::UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("context has already been set"), std::string::npos);
    }
    EXPECT_NO_THROW(mp::set_start_method("fork", true));
    mp::set_start_method("", true);  // forget
    EXPECT_EQ(mp::get_start_method(true), std::nullopt);
}

TEST_F(ContextTest, UnknownMethodIsAClearUsageError) {
    try {
        mp::set_start_method("vfork", true);
        ADD_FAILURE() << "unknown method accepted";
    } catch (const mp::UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("'vfork'"), std::string::npos) << e.what();
    }
    EXPECT_THROW(mp::get_context("Fork"), mp::UsageError);
    EXPECT_EQ(mp::get_start_method(true), std::nullopt);  // a failed call sets nothing
}

// "mpi" is a context of multiproc::mpi (not linked into this test), never a start method.
TEST_F(ContextTest, MpiContextNeedsTheMpiTargetAndIsNoStartMethod) {
    try {
        static_cast<void>(mp::get_context("mpi"));
        ADD_FAILURE() << "the mpi context without multiproc::mpi";
    } catch (const mp::UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("multiproc::mpi"), std::string::npos) << e.what();
    }
    EXPECT_THROW(mp::set_start_method("mpi", true), mp::UsageError);
    EXPECT_EQ(mp::get_start_method(true), std::nullopt);
    EXPECT_EQ(mp::to_string(mp::StartMethod::mpi), "mpi");
    // Such a context starts no Process.
    EXPECT_THROW(mp::Context(mp::StartMethod::mpi).Process([] {}).start(), mp::UsageError);
}

TEST_F(ContextTest, GetContext) {
    auto fork = mp::get_context("fork");
    EXPECT_EQ(fork.method(), mp::StartMethod::fork);
    EXPECT_EQ(fork.get_start_method(), "fork");
    EXPECT_EQ(fork, mp::Context(mp::StartMethod::fork));
    EXPECT_EQ(mp::get_start_method(true), std::nullopt);  // a named context fixes nothing
    EXPECT_EQ(mp::get_context().method(), mp::StartMethod::fork);
    EXPECT_EQ(mp::get_start_method(true), "fork");  // the default context does
    EXPECT_EQ(mp::to_string(mp::StartMethod::forkserver), "forkserver");
}

TEST_F(ContextTest, ContextGetContext) {
    auto spawn = mp::get_context("spawn");
    EXPECT_EQ(spawn.get_context(), spawn);  // Python's ctx.get_context(): itself
    EXPECT_EQ(spawn.get_context("fork").method(), mp::StartMethod::fork);
    EXPECT_THROW(static_cast<void>(spawn.get_context("vfork")), mp::UsageError);
    EXPECT_EQ(mp::get_start_method(true), std::nullopt);  // fixes nothing
}

TEST_F(ContextTest, AllStartMethodsListsTheDefaultFirst) {
    auto all = mp::get_all_start_methods();
    ASSERT_FALSE(all.empty());
    EXPECT_EQ(all.front(), "fork");
    for (const auto& m : all) EXPECT_EQ(mp::get_context(m).get_start_method(), m);
}

TEST_F(ContextTest, ContextMakesProcesses) {
    auto p = mp::get_context("fork").Process([](int code) { std::exit(code); }, 9);
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 9);
    EXPECT_EQ(mp::get_start_method(true), std::nullopt);
}

TEST_F(ContextTest, ProcessWithoutContextResolvesTheDefaultAtStart) {
    mp::Process p([] {});
    EXPECT_EQ(mp::get_start_method(true), std::nullopt);  // not at construction
    p.start();
    EXPECT_EQ(mp::get_start_method(true), "fork");
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

// A child inherits the start method that made it (Python's BaseProcess._bootstrap forces it):
// its own children are made the same way, whatever the parent's global default was.
int g_written_by_child = 0;

void report_method(mp::Connection out) {
    out.send(mp::get_start_method(true).value_or("none"));
    out.send(g_written_by_child);
}

void start_grandchild(mp::Connection out) {
    report_method(out);
    g_written_by_child = 42;  // a forked grandchild is a copy and sees it; others do not
    mp::Process g(report_method, out);
    g.start();
    g.join();
    std::exit(g.exitcode() == 0 ? 0 : 3);
}

// The method of the child and the grandchild, and whether the grandchild saw the child's write.
struct Lineage {
    std::string child, grandchild;
    bool grandchild_saw_child_memory;
};

Lineage run_lineage(mp::Process p, mp::Connection& in) {
    p.start();
    Lineage l;
    l.child = in.recv<std::string>();
    EXPECT_EQ(in.recv<int>(), 0);
    l.grandchild = in.recv<std::string>();
    l.grandchild_saw_child_memory = in.recv<int>() == 42;
    p.join(std::chrono::seconds(60));
    EXPECT_EQ(p.exitcode(), std::optional<int>(0));
    return l;
}

class ChildStartMethod : public mp::test::StartMethodTest {
protected:
    void TearDown() override { mp::set_start_method("", true); }
};

TEST_P(ChildStartMethod, ChildOfANamedContextUsesItsMethodNotTheParentsDefault) {
    // The parent's global default differs from the context the child is made with.
    mp::set_start_method(GetParam() == "fork" ? "spawn" : "fork", true);
    auto [in, out] = mp::Pipe(false);
    Lineage l = run_lineage(ctx().Process(start_grandchild, out), in);
    EXPECT_EQ(l.child, GetParam());
    EXPECT_EQ(l.grandchild, GetParam());
    EXPECT_EQ(l.grandchild_saw_child_memory, GetParam() == "fork");
}

TEST_P(ChildStartMethod, ChildOfTheDefaultContextUsesTheGlobalDefault) {
    mp::set_start_method(GetParam(), true);
    auto [in, out] = mp::Pipe(false);
    Lineage l = run_lineage(mp::Process(start_grandchild, out), in);
    EXPECT_EQ(l.child, GetParam());
    EXPECT_EQ(l.grandchild, GetParam());
    EXPECT_EQ(l.grandchild_saw_child_memory, GetParam() == "fork");
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ChildStartMethod,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
