#include "sys/process.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "sys/syscall.hpp"

namespace mp::sys {

pid_t current_pid() noexcept { return ::getpid(); }

pid_t current_tid() noexcept { return ::gettid(); }

pid_t parent_pid() noexcept { return ::getppid(); }

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

void exit_now(int code) noexcept { ::_exit(code); }

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
