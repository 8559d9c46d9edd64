// Signal masks and dispositions: of a process that serves others (the forkserver, the resource
// tracker), of the task engine (its supervisor thread is created with every signal blocked, so
// process-directed signals reach the user's threads; a worker starts with every signal unblocked
// and SIGINT ignored), and SIGCHLD read as a descriptor. SIGINT under mp::SigintGuard:
// sys/signals.hpp.
#pragma once

#include <signal.h>

#include <initializer_list>

#include "multiproc/detail/fd.hpp"

namespace mp::sys {

/// Adds `sigs` to the calling thread's mask (sigprocmask); returns the mask before.
sigset_t block_signals(std::initializer_list<int> sigs) noexcept;
/// Sets the calling thread's mask to `mask`; fork-child safe (bound at load, see bound.hpp).
void set_signal_mask(const sigset_t& mask) noexcept;
/// Blocks every signal in the calling thread while alive (a thread created meanwhile inherits
/// the full mask); the destructor restores the previous mask.
class AllSignalsBlocked {
public:
    AllSignalsBlocked() noexcept;
    AllSignalsBlocked(const AllSignalsBlocked&) = delete;
    AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;
    ~AllSignalsBlocked();

private:
    sigset_t old_;
};

/// Unblocks `sig` in the calling thread; fork-child safe.
void unblock_signal(int sig) noexcept;
/// Installs `handler` for `sig` (SA_RESTART, nothing more blocked while it runs); fork-child safe.
void catch_signal(int sig, void (*handler)(int)) noexcept;
/// Blocks no signal in the calling thread.
void unblock_all_signals() noexcept;
/// Sets the disposition of `sig` to SIG_IGN.
void ignore_signal(int sig) noexcept;
/// Whether the kernel reaps this process's children itself (SIGCHLD ignored, or SA_NOCLDWAIT):
/// a child's pid may then be reused as soon as it ends.
[[nodiscard]] bool kernel_reaps_children() noexcept;
/// A signalfd (close-on-exec, non-blocking) readable while `sig` is pending; block `sig` first.
detail::UniqueFd make_signalfd(int sig);
/// Reads one pending signal off a signalfd (nothing when none is pending).
void drain_signalfd(int fd) noexcept;

}  // namespace mp::sys
