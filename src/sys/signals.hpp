// Signals as PEP 475 has them, in one place: every blocking wait of the library goes through
// wait_until, which retries after a signal handler returns (EINTR, or a wake-up that found
// nothing) against the caller's ORIGINAL absolute deadline, so a 100 Hz SIGALRM neither fails
// a call nor stretches its timeout. The one exception is SIGINT while the program holds an
// mp::SigintGuard (include/multiproc/signals.hpp, docs/signals.md): a wait marked
// Interruptible::yes, in a thread that holds a guard, then throws mp::KeyboardInterrupt.
//
// How SIGINT reaches a waiter: the handler (async-signal-safe) sets a process-wide pending
// flag and makes a process-wide eventfd readable. poll-based waits add that eventfd to their
// set, so they wake whichever thread the kernel delivered the signal to; futex waits cannot
// watch a descriptor, so while armed they sleep in slices of kInterruptSlice and look at the
// flag between slices (and after EINTR). The first interruptible wait that sees the flag
// consumes it (one Ctrl-C, one exception), as Python raises one KeyboardInterrupt per signal.
#pragma once

#include <poll.h>

#include <cerrno>
#include <chrono>

#include "multiproc/timeout.hpp"

namespace mp::sys {

/// Whether a SIGINT under mp::SigintGuard may end a wait with mp::KeyboardInterrupt. Only the
/// waits of the public blocking calls say yes, and only where leaving is clean (nothing
/// claimed yet); internal waits, cleanup and destructors say no and just retry.
enum class Interruptible : bool { no, yes };

/// The longest a futex wait sleeps between two looks at the SIGINT flag while armed.
inline constexpr std::chrono::milliseconds kInterruptSlice{20};

/// Installs the SIGINT handler at the first guard of the process, and counts a guard in the
/// calling thread (its interruptible waits throw from now on). Nests.
void sigint_enter();
/// Undoes one sigint_enter of this thread; the process's last one restores the previous
/// SIGINT disposition and drops a SIGINT nobody consumed.
void sigint_leave() noexcept;
/// In a fork child, before its target runs: the parent's guards are not the child's; SIGINT is
/// back to SIG_DFL (as exec gives a spawn child). Async-signal-safe, no allocation.
void sigint_forget_after_fork() noexcept;
/// True when the calling thread holds a guard: its interruptible waits may throw.
[[nodiscard]] bool sigint_armed() noexcept;
/// The eventfd a poll-based wait adds to its set, or -1 when `i` is no or the thread is unarmed.
[[nodiscard]] int sigint_fd(Interruptible i) noexcept;
/// Throws mp::KeyboardInterrupt, consuming the pending SIGINT, when `i` is yes, the thread is
/// armed and a SIGINT arrived.
void throw_if_sigint(Interruptible i);

/// After a poll found sigint_fd readable: empties it unless a SIGINT is still pending, so a
/// SIGINT consumed elsewhere does not keep waking pollers.
void sigint_fd_settle() noexcept;

/// The one wait loop (PEP 475). `block(until)` waits once: > 0 ready, 0 when `until` passed
/// (or woke early with nothing ready), < 0 with errno set when it failed (EINTR: a handler
/// ran). Retries against the same absolute `deadline` until ready or passed; returns block's
/// positive result, 0 on timeout, or a negative result with errno for failures other than
/// EINTR. `sees_sigint_fd`: block polls sigint_fd(i) itself; else, while armed, each wait is
/// cut to kInterruptSlice so the SIGINT flag is looked at in time.
template <class Block>
int wait_until(detail::Deadline deadline, Interruptible i, bool sees_sigint_fd, Block&& block) {
    const bool sliced = !sees_sigint_fd && i == Interruptible::yes && sigint_armed();
    for (;;) {
        throw_if_sigint(i);
        detail::Deadline until = deadline;
        if (sliced) {
            const detail::Deadline slice(kInterruptSlice);
            if (deadline.is_forever() || *slice.at() < *deadline.at()) until = slice;
        }
        const int r = block(until);
        if (r > 0) return r;
        if (r < 0 && errno != EINTR) return r;
        if (deadline.expired()) {
            throw_if_sigint(i);  // a Ctrl-C that ended the wait wins over the timeout
            return 0;
        }
    }
}

}  // namespace mp::sys
