#include "sys/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "multiproc/errors.hpp"
#include "sys/signals.hpp"
#include "sys/timespec.hpp"

namespace mp::sys {
namespace {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "futex words must be plain lock-free 32-bit atomics");

long futex(std::atomic<std::uint32_t>& word, int op, std::uint32_t val, const timespec* ts,
           std::uint32_t val3) noexcept {
    return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, val, ts, nullptr,
                     val3);
}

}  // namespace

bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, detail::Deadline deadline,
                Interruptible i) {
    const int r = wait_until(deadline, i, false, [&](detail::Deadline until) -> int {
        if (word.load(std::memory_order_acquire) != expected) return 1;
        timespec ts{};
        const timespec* tsp = nullptr;
        if (auto at = until.at()) {
            ts = monotonic_timespec(*at);  // FUTEX_WAIT_BITSET: absolute, CLOCK_MONOTONIC
            tsp = &ts;
        }
        // Not FUTEX_PRIVATE_FLAG: the word lives in memory shared with other processes.
        if (futex(word, FUTEX_WAIT_BITSET, expected, tsp, FUTEX_BITSET_MATCH_ANY) == 0) return 1;
        if (errno == EAGAIN) return 1;
        if (errno == ETIMEDOUT) return 0;
        return -1;
    });
    if (r < 0) throw_os_error("futex(FUTEX_WAIT_BITSET)");
    return r > 0;
}

int futex_wake(std::atomic<std::uint32_t>& word, int n) noexcept {
    long r = futex(word, FUTEX_WAKE, static_cast<std::uint32_t>(n), nullptr, 0);
    return r < 0 ? 0 : static_cast<int>(r);
}

int futex_wake_all(std::atomic<std::uint32_t>& word) noexcept { return futex_wake(word, INT_MAX); }

}  // namespace mp::sys
