// How long a loop that polls MPI waits between probes: MPI gives no descriptor to sleep on, so a
// rank's relay and rank 0's progress thread probe, then wait a little. Shared by both ends, since
// each waits for what the other answers.
#pragma once

#include <algorithm>
#include <chrono>

namespace mp::detail::mpi {

/// The pause after each turn of a probing loop: none after a turn that did something; then
/// growing from 5 us (doubling) up to 50 us while the loop's last activity is recent (the
/// answer to what it just sent, or the next batch for what it just answered, is likely on its
/// way: one probe a millisecond cost a map of tiny tasks a third of its speed), up to 1 ms once
/// it has been idle for longer (an idle pool costs a thousand wake-ups a second, not twenty).
class ProbePause {
public:
    /// The pause after a turn (`busy`: the turn sent or received something) that ended `now`.
    std::chrono::microseconds next(bool busy, std::chrono::steady_clock::time_point now =
                                                  std::chrono::steady_clock::now()) noexcept {
        using namespace std::chrono;
        if (busy) {
            last_busy_ = now;
            return pause_ = microseconds(0);
        }
        const auto cap = now - last_busy_ < kHotWindow ? kHotPause : kIdlePause;
        return pause_ = std::min(pause_ * 2 + microseconds(5), cap);
    }

private:
    static constexpr auto kHotWindow = std::chrono::milliseconds(5);
    static constexpr auto kHotPause = std::chrono::microseconds(50);
    static constexpr auto kIdlePause = std::chrono::microseconds(1000);
    std::chrono::microseconds pause_{0};
    std::chrono::steady_clock::time_point last_busy_{};
};

}  // namespace mp::detail::mpi
