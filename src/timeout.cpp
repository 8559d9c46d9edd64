#include "multiproc/timeout.hpp"

#include <climits>

namespace mp::detail {

// Out of line: every program including multiproc would otherwise compile the clock arithmetic.
Deadline::Deadline(Timeout t) noexcept {
    if (!t.is_forever()) {
        at_ = clock::now() + t.duration();
        forever_ = false;
    }
}

std::optional<Deadline::clock::time_point> Deadline::at() const noexcept {
    if (forever_) return std::nullopt;
    return at_;
}

bool Deadline::expired() const noexcept { return !forever_ && clock::now() >= at_; }

std::chrono::nanoseconds Deadline::remaining() const noexcept {
    if (forever_) return std::chrono::nanoseconds::max();
    auto left = at_ - clock::now();
    return left.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(left)
                            : std::chrono::nanoseconds::zero();
}

int Deadline::poll_ms() const noexcept {
    if (forever_) return -1;
    auto ns = remaining().count();
    auto ms = (ns + 999'999) / 1'000'000;
    return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

}  // namespace mp::detail
