// The fixture of every test run once per start method: the parameter is the method's name
// ("fork", "spawn", "forkserver"), and children are started under it and joined with a limit.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

#include "multiproc/context.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/process.hpp"

namespace mp::test {

/// A test parametrized by the name of a start method.
class StartMethodTest : public ::testing::TestWithParam<std::string> {
protected:
    /// The context of this test's start method.
    mp::Context ctx() const { return mp::get_context(GetParam()); }

    /// Options of a pool or executor (PoolOptions, ExecutorOptions) with this test's method.
    template <class Options>
    Options with_context() const {
        Options o;
        o.context = ctx();
        return o;
    }

    /// Starts a child running target(args...) under this test's start method.
    template <class... A>
    mp::Process start(A&&... a) const {
        auto p = ctx().Process(std::forward<A>(a)...);
        p.start();
        return p;
    }

    /// Joins p and expects exit code 0; a child still running after 60 s is killed (a hang
    /// fails the test instead of stalling it).
    static void join_ok(mp::Process& p) {
        p.join(std::chrono::seconds(60));
        if (!p.exitcode()) {
            p.kill();
            p.join();
        }
        EXPECT_EQ(p.exitcode(), std::optional<int>(0));
    }
};

/// In a child: exits 0 when misuse() throws mp::UsageError (what the parent expects), else
/// `code` (which the parent's join_ok reports).
template <class F>
[[noreturn]] void exit_by_usage_error(F misuse, int code) {
    try {
        misuse();
    } catch (const mp::UsageError&) {
        std::_Exit(0);
    }
    std::_Exit(code);
}

}  // namespace mp::test
