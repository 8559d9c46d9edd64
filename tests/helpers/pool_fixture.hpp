// The fixture of the Pool tests (tests/pool_test.cpp, tests/pool_faults_test.cpp) and the
// task functions both use: plain functions, so they travel by identity under every start method.
#pragma once

#include <chrono>
#include <thread>

#include "helpers/start_method_test.hpp"
#include "multiproc/pool.hpp"

namespace mp::test {

/// Returns x squared.
inline int square(int x) { return x * x; }

/// Sleeps ms milliseconds, then returns ms.
inline int sleep_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}

/// A Pool test run once per start method.
class PoolTest : public StartMethodTest {
protected:
    /// Pool options with this test's start method.
    mp::PoolOptions opts() const {
        mp::PoolOptions o;
        o.context = ctx();
        return o;
    }
};

}  // namespace mp::test
