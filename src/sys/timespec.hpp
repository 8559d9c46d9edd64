// Deadlines as the kernel takes them: an absolute CLOCK_MONOTONIC timespec (steady_clock is
// CLOCK_MONOTONIC on Linux, the clock of FUTEX_WAIT_BITSET and pthread_mutex_clocklock).
#pragma once

#include <time.h>

#include <chrono>

namespace mp::sys {

/// The steady_clock time point `at` as an absolute CLOCK_MONOTONIC timespec.
inline timespec monotonic_timespec(std::chrono::steady_clock::time_point at) noexcept {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
    return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

}  // namespace mp::sys
