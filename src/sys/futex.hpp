// Process-shared futex waits and wakes on a 32-bit word in shared memory. Waits take one
// absolute CLOCK_MONOTONIC deadline, so EINTR retries neither lengthen nor shorten them
// (sys::wait_until, src/sys/signals.hpp).
// Usable by any module that builds blocking primitives on shared arenas (queues, pools).
#pragma once

#include <atomic>
#include <cstdint>

#include "multiproc/timeout.hpp"
#include "sys/signals.hpp"

namespace mp::sys {

/// Sleeps while *word == expected, until woken or the deadline passes. Returns false only when
/// the deadline passed; true when woken, when *word != expected, or spuriously. A handled
/// signal is retried; with Interruptible::yes a SIGINT under mp::SigintGuard throws
/// mp::KeyboardInterrupt (nothing else changed: the caller must leave cleanly).
bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, detail::Deadline deadline,
                Interruptible i = Interruptible::no);
/// Wakes up to n waiters sleeping on word (any process); returns how many were woken.
int futex_wake(std::atomic<std::uint32_t>& word, int n) noexcept;
/// Wakes every waiter sleeping on word.
int futex_wake_all(std::atomic<std::uint32_t>& word) noexcept;

}  // namespace mp::sys
