// Start methods and contexts: the global default, get_context, and the methods not yet built.
#include "multiproc/context.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "multiproc/errors.hpp"
#include "multiproc/process.hpp"

namespace {

// Every test starts from "nothing set" (the global default is process-wide state).
class ContextTest : public ::testing::Test {
  protected:
    void SetUp() override { mp::set_start_method("", true); }
    void TearDown() override { mp::set_start_method("", true); }
};

bool available(const std::string& m) {
    auto all = mp::get_all_start_methods();
    return std::find(all.begin(), all.end(), m) != all.end();
}

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

TEST_F(ContextTest, MethodsNotImplementedYetSayTheirName) {
    for (std::string m : {"spawn", "forkserver"}) {
        if (available(m)) {
            EXPECT_EQ(mp::get_context(m).get_start_method(), m);
            continue;
        }
        try {
            static_cast<void>(mp::get_context(m));
            ADD_FAILURE() << m << " silently accepted";
        } catch (const mp::ProcessError& e) {
            EXPECT_EQ(std::string(e.what()),
                      "multiproc: start method '" + m + "' is not implemented yet");
        }
        EXPECT_THROW(mp::set_start_method(m, true), mp::ProcessError);
        EXPECT_THROW(
            mp::Context(m == "spawn" ? mp::StartMethod::spawn : mp::StartMethod::forkserver),
            mp::ProcessError);
    }
    EXPECT_EQ(mp::get_start_method(true), std::nullopt);
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

}  // namespace
