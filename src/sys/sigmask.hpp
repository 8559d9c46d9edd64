// The calling thread's signal mask and a process's dispositions, for the task engine: its
// supervisor thread is created with every signal blocked (so process-directed signals reach the
// user's threads), and a worker process starts with every signal unblocked and SIGINT ignored.
#pragma once

#include <signal.h>

namespace mp::sys {

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

/// Unblocks every signal in the calling thread.
void unblock_all_signals() noexcept;
/// Sets SIGINT's disposition to SIG_IGN for the process.
void ignore_sigint() noexcept;

}  // namespace mp::sys
