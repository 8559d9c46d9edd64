// The pause of MPI's probing loops (src/mpi/mpi_pause.hpp): none after a busy turn, short while
// the last activity is recent, up to a millisecond once idle. The turns' times are given, not
// waited for.
#include "mpi/mpi_pause.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST(ProbePause, NoneAfterABusyTurnThenShortWhileRecent) {
    mp::detail::mpi::ProbePause p;
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(p.next(true, t0), microseconds(0));
    EXPECT_EQ(p.next(false, t0), microseconds(5));
    EXPECT_EQ(p.next(false, t0), microseconds(15));
    EXPECT_EQ(p.next(false, t0), microseconds(35));
    for (int i = 0; i < 20; ++i) EXPECT_EQ(p.next(false, t0 + milliseconds(4)), microseconds(50));
    EXPECT_EQ(p.next(true, t0 + milliseconds(4)), microseconds(0));
    EXPECT_EQ(p.next(false, t0 + milliseconds(4)), microseconds(5));
}

TEST(ProbePause, GrowsToAMillisecondOnceIdle) {
    mp::detail::mpi::ProbePause p;
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(p.next(true, t0), microseconds(0));
    microseconds last{0};
    for (int i = 0; i < 20; ++i) {
        const auto next = p.next(false, t0 + milliseconds(6));  // past the recent window
        EXPECT_GE(next, last);
        last = next;
    }
    EXPECT_EQ(last, microseconds(1000));
}

}  // namespace
