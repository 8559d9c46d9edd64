// Processes: who we are, making a child, signalling one, leaving at once. Functions a fork
// child may call are noexcept and report failure as -errno; the others throw std::system_error.
#pragma once

#include <sys/types.h>

namespace mp::sys {

/// getpid(); fork-child safe (bound at load, see bound.hpp).
[[nodiscard]] pid_t current_pid() noexcept;
/// gettid(): the calling thread's kernel thread id.
[[nodiscard]] pid_t current_tid() noexcept;
/// getppid(): the process the kernel sees as the parent (1, or a subreaper, once it died);
/// fork-child safe.
[[nodiscard]] pid_t parent_pid() noexcept;
/// fork() with the pthread_atfork handlers; 0 in the child (throws std::system_error).
[[nodiscard]] pid_t fork_process();
/// _Fork(): fork without the pthread_atfork handlers, for a process that holds no lock another
/// thread could hold; 0 in the child, -errno on failure.
[[nodiscard]] pid_t fork_without_handlers() noexcept;
/// clone(SIGCHLD) straight to the kernel: not even the C library's own fork bookkeeping runs,
/// so the child may only make system calls (then exec or _exit); 0 in the child, -errno.
[[nodiscard]] pid_t clone_bare() noexcept;
/// kill(pid, sig); 0 or -errno (ESRCH: no such process).
int send_signal(pid_t pid, int sig) noexcept;
/// raise(sig): sends `sig` to the calling thread.
void raise_signal(int sig) noexcept;
/// prctl(PR_SET_PDEATHSIG): the kernel sends `sig` to this process when the thread that
/// started it ends; fork-child safe.
void set_parent_death_signal(int sig) noexcept;
/// _exit(code): leaves now, running no exit handler and flushing nothing; fork-child safe.
[[noreturn]] void exit_now(int code) noexcept;
/// on_exit(handler): `handler(status)` runs at exit(status), before the handlers registered
/// earlier; false when it could not be registered. Fork-child safe.
[[nodiscard]] bool add_exit_handler(void (*handler)(int status, void*)) noexcept;
/// Registers fork handlers (pthread_atfork): `prepare` before every fork(), `parent` and
/// `child` after it in each process; nullptr for none. fork_without_handlers runs none.
void on_fork(void (*prepare)(), void (*parent)(), void (*child)()) noexcept;
/// Runs f in the child after every fork() (on_fork with a child handler only).
inline void on_fork_child(void (*f)()) noexcept { on_fork(nullptr, nullptr, f); }
/// Threads of this process (1 when unknown): free until a first thread was ever created.
[[nodiscard]] int thread_count() noexcept;

}  // namespace mp::sys
