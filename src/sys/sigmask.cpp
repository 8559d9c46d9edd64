#include "sys/sigmask.hpp"

#include <pthread.h>

namespace mp::sys {

AllSignalsBlocked::AllSignalsBlocked() noexcept {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old_);
}

AllSignalsBlocked::~AllSignalsBlocked() {
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

void unblock_all_signals() noexcept {
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
}

void ignore_sigint() noexcept {
    ::signal(SIGINT, SIG_IGN);
}

}  // namespace mp::sys
