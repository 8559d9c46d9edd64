// A manager connection thread's wait for its client's next request. A client that calls in a
// loop (dict set, get, set, ...) sends its next request a few microseconds after it reads the
// reply; a thread that blocks in recv at once pays a sleep and a wake-up for every request, and
// on this kind of machine the wake-up costs more than the call. So while the client is in a
// burst (its last request came soon after the reply before it) the thread polls for a short
// while before it blocks; an idle client, or a machine with one CPU, never costs a spin.
#pragma once

#include <chrono>

namespace mp {
class Connection;
}

namespace mp::detail {

class RequestWait {
public:
    using clock = std::chrono::steady_clock;
    /// The longest spin before blocking.
    static constexpr std::chrono::microseconds spin_for{50};
    /// A request that comes within this long of the reply before it keeps the burst going.
    static constexpr std::chrono::microseconds burst_gap{500};

    /// Before a blocking recv on c: while the client is in a burst, polls c for up to spin_for
    /// so that the recv finds the request already there.
    void before_recv(Connection& c) noexcept;
    /// After the recv: the client stays in a burst when the request came soon after the reply.
    void received() noexcept { burst_ = clock::now() - replied_ <= burst_gap; }
    /// Records that the reply to the last request was sent.
    void replied() noexcept { replied_ = clock::now(); }
    /// Whether the next wait will spin before it blocks.
    [[nodiscard]] bool in_burst() const noexcept { return burst_; }

private:
    clock::time_point replied_{};
    bool burst_ = false;
};

}  // namespace mp::detail
