// Timeouts and deadlines. Every blocking call of multiproc takes an mp::Timeout: any
// std::chrono duration (rounded up to whole nanoseconds, negative means zero) or mp::forever.
// Internally a timeout becomes one absolute deadline on CLOCK_MONOTONIC, computed once, so
// retries after EINTR neither lengthen nor shorten the wait.
#pragma once

#include <cstdint>
#include <optional>

#include "multiproc/detail/std_parts.hpp"

namespace mp {

/// Tag type of mp::forever.
struct forever_t {
    explicit constexpr forever_t() = default;
};
/// Wait without a time limit (Python's timeout=None).
inline constexpr forever_t forever{};

/// A relative time limit: a chrono duration or mp::forever.
class Timeout {
public:
    /// No limit.
    constexpr Timeout(forever_t) noexcept : ns_(-1) {}
    /// A limit of d, rounded up to whole nanoseconds; negative durations mean "do not wait".
    template <class Rep, class Period>
    constexpr Timeout(std::chrono::duration<Rep, Period> d) noexcept  // NOLINT: implicit on purpose
        : ns_(to_ns(d)) {}
    /// True for mp::forever.
    [[nodiscard]] constexpr bool is_forever() const noexcept { return ns_ < 0; }
    /// The limit (meaningless when is_forever()).
    [[nodiscard]] constexpr std::chrono::nanoseconds duration() const noexcept {
        return std::chrono::nanoseconds(ns_ < 0 ? 0 : ns_);
    }

private:
    template <class Rep, class Period>
    static constexpr std::int64_t to_ns(std::chrono::duration<Rep, Period> d) noexcept {
        namespace c = std::chrono;
        if (d <= c::duration<Rep, Period>::zero()) return 0;
        const auto limit = c::duration<double, std::nano>(c::nanoseconds::max() / 2);
        if (c::duration<double, std::nano>(d) >= limit) return -1;  // so long it is forever
        return c::ceil<c::nanoseconds>(d).count();
    }
    std::int64_t ns_;
};

namespace detail {

/// An absolute point on CLOCK_MONOTONIC (std::chrono::steady_clock), or none (forever).
class Deadline {
public:
    using clock = std::chrono::steady_clock;
    /// A deadline `t` from now.
    explicit Deadline(Timeout t) noexcept;
    /// An absolute deadline.
    explicit Deadline(clock::time_point at) noexcept : at_(at), forever_(false) {}
    /// No deadline.
    static Deadline never() noexcept { return Deadline(Timeout(forever)); }
    /// True when there is no deadline.
    [[nodiscard]] bool is_forever() const noexcept { return forever_; }
    /// True once the deadline has passed.
    [[nodiscard]] bool expired() const noexcept;
    /// Time left, zero once expired; meaningless when is_forever().
    [[nodiscard]] std::chrono::nanoseconds remaining() const noexcept;
    /// Milliseconds left for poll(2): rounded up, -1 for forever.
    [[nodiscard]] int poll_ms() const noexcept;
    /// The absolute time point, if any (out of line: programs that include this header do not
    /// compile a std::optional of a time point).
    [[nodiscard]] std::optional<clock::time_point> at() const noexcept;

private:
    clock::time_point at_{};  // meaningless when forever_
    bool forever_ = true;
};

}  // namespace detail
}  // namespace mp
