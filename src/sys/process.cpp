#include "sys/process.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "sys/bound.hpp"
#include "sys/syscall.hpp"

namespace mp::sys {

// Hot, as everything a fork child runs before its target (.text.hot; src/current_process.cpp).
[[gnu::hot]] pid_t current_pid() noexcept { return bound(&::getpid)(); }

pid_t current_tid() noexcept { return ::gettid(); }

[[gnu::hot]] pid_t parent_pid() noexcept { return bound(&::getppid)(); }

pid_t fork_process() { return check(::fork(), "fork"); }

pid_t fork_without_handlers() noexcept {
    const pid_t pid = ::_Fork();
    return pid < 0 ? -errno : pid;
}

pid_t clone_bare() noexcept {
    const auto pid = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
    return pid < 0 ? -errno : pid;
}

int send_signal(pid_t pid, int sig) noexcept { return ::kill(pid, sig) == -1 ? -errno : 0; }

void on_fork(void (*prepare)(), void (*parent)(), void (*child)()) noexcept {
    ::pthread_atfork(prepare, parent, child);
}

void raise_signal(int sig) noexcept { ::raise(sig); }

[[gnu::hot]] void set_parent_death_signal(int sig) noexcept {
    bound (&::prctl)(PR_SET_PDEATHSIG, sig);
}

[[gnu::hot]] void exit_now(int code) noexcept {
    bound (&::_exit)(code);
    __builtin_unreachable();  // _exit does not return (the pointer's type cannot say so)
}

[[gnu::hot]] bool add_exit_handler(void (*handler)(int status, void*)) noexcept {
    return bound(&::on_exit)(handler, nullptr) == 0;
}

// glibc's __libc_single_threaded stays true until a first thread is created, which makes the
// common case free; after that one stat(2): the kernel reports a task directory's link count
// as 2 + its threads.
int thread_count() noexcept {
    if (__libc_single_threaded) return 1;
    struct stat st;
    if (::stat("/proc/self/task", &st) != 0 || st.st_nlink < 3) return 1;
    return static_cast<int>(st.st_nlink - 2);
}

}  // namespace mp::sys
