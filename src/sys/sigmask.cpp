#include "sys/sigmask.hpp"

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sys/bound.hpp"
#include "sys/syscall.hpp"

namespace mp::sys {

sigset_t block_signals(std::initializer_list<int> sigs) noexcept {
    sigset_t set, old;
    sigemptyset(&set);
    for (int s : sigs) sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, &old);
    return old;
}

// Hot: the forkserver's every child runs it between fork and its target (.text.hot).
[[gnu::hot]] void set_signal_mask(const sigset_t& mask) noexcept {
    bound (&::pthread_sigmask)(SIG_SETMASK, &mask, nullptr);  // sigprocmask calls it
}

[[gnu::hot]] void unblock_signal(int sig) noexcept {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    bound (&::pthread_sigmask)(SIG_UNBLOCK, &set, nullptr);
}

[[gnu::hot]] void catch_signal(int sig, void (*handler)(int)) noexcept {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    bound (&::sigaction)(sig, &sa, nullptr);
}

AllSignalsBlocked::AllSignalsBlocked() noexcept {
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &old_);
}

AllSignalsBlocked::~AllSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

void unblock_all_signals() noexcept {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

void ignore_signal(int sig) noexcept { ::signal(sig, SIG_IGN); }

bool kernel_reaps_children() noexcept {
    struct sigaction chld;
    return ::sigaction(SIGCHLD, nullptr, &chld) == 0 &&
           (chld.sa_handler == SIG_IGN || (chld.sa_flags & SA_NOCLDWAIT));
}

detail::UniqueFd make_signalfd(int sig) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    return detail::UniqueFd(check(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), "signalfd"));
}

void drain_signalfd(int fd) noexcept {
    signalfd_siginfo si;
    static_cast<void>(::read(fd, &si, sizeof si));
}

}  // namespace mp::sys
