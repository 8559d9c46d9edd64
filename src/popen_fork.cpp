// The `fork` start method (CPython's popen_fork.py) and DirectChild, the Popen of any child
// this process made itself (fork now, spawn next).
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "multiproc/errors.hpp"
#include "popen.hpp"
#include "sys/io.hpp"
#include "sys/pidfd.hpp"
#include "sys/syscall.hpp"

namespace mp::detail {

std::optional<int> DirectChild::reap(bool block) {
    if (code_) return code_;
    siginfo_t si;
    std::memset(&si, 0, sizeof si);
    int flags = WEXITED | (block ? 0 : WNOHANG);
    if (sys::retry_eintr([&] { return ::waitid(P_PID, static_cast<id_t>(pid_), &si, flags); }) ==
        -1) {
        if (errno == ECHILD)
            throw ProcessError("multiproc: child " + std::to_string(pid_) +
                               " was reaped by someone else (SIGCHLD ignored, or a waitpid(-1) "
                               "elsewhere); its exit code is lost");
        throw_os_error("waitid");
    }
    if (si.si_pid == 0) return std::nullopt;  // WNOHANG: still running
    code_ = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
    return code_;
}

std::optional<int> DirectChild::poll() {
    std::lock_guard lk(m_);
    return reap(false);
}

std::optional<int> DirectChild::wait(Deadline deadline) {
    if (deadline.is_forever()) {
        // Wait without reaping (WNOWAIT) and without the lock, so other threads can still poll
        // or signal; then reap under the lock. ECHILD: a concurrent waiter reaped it first.
        siginfo_t si;
        std::memset(&si, 0, sizeof si);
        if (sys::retry_eintr([&] {
                return ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOWAIT);
            }) == -1 &&
            errno != ECHILD)
            throw_os_error("waitid");
        std::lock_guard lk(m_);
        return reap(true);
    }
    if (auto c = poll()) return c;
    // Wait on the pidfd without the lock, for the same reason. Readable means the child is a
    // zombie (or already reaped by a concurrent waiter), so the blocking waitid returns at once.
    if (pidfd_.get() < 0 || !sys::wait_readable(pidfd_.get(), deadline)) return poll();
    std::lock_guard lk(m_);
    return reap(true);
}

void DirectChild::send_signal(int sig) {
    std::lock_guard lk(m_);
    if (code_ || pidfd_.get() < 0) return;  // reaped: the pid may already belong to another
    int r = sys::pidfd_send_signal(pidfd_.get(), sig);
    if (r < 0 && r != -ESRCH) throw_os_error("pidfd_send_signal", -r);
}

void DirectChild::close() noexcept {
    std::lock_guard lk(m_);
    pidfd_.reset();
}

namespace {

std::atomic<bool> g_warned{false};

// Threads of this process; 1 when unknown. One stat(2): the kernel reports a task directory's
// link count as 2 + its threads, far cheaper than formatting /proc/self/status on every start.
int thread_count() noexcept {
    struct stat st;
    if (::stat("/proc/self/task", &st) != 0 || st.st_nlink < 3) return 1;
    return static_cast<int>(st.st_nlink - 2);
}

}  // namespace

void warn_if_multithreaded_fork() {
    if (g_warned.load(std::memory_order_relaxed)) return;
    int threads = thread_count();
    if (threads <= 1 || g_warned.exchange(true)) return;
    // Python 3.12's DeprecationWarning, once per process, written in one write(2).
    char msg[256];
    int n = std::snprintf(msg, sizeof msg,
                          "multiproc: warning: this process (pid=%d) is multi-threaded (%d "
                          "threads); use of fork() may lead to deadlocks in the child.\n",
                          static_cast<int>(::getpid()), threads);
    if (n > 0)
        static_cast<void>(
            sys::retry_eintr([&] { return ::write(2, msg, static_cast<size_t>(n)); }));
}

void reset_fork_warning_for_testing() noexcept {
    g_warned.store(false);
}

std::unique_ptr<Popen> launch_fork(const LaunchSpec& spec) {
    warn_if_multithreaded_fork();
    // Buffered output written before start() must not be printed twice (once by each process).
    flush_std_streams();

    // All signals blocked across fork (as libuv does): a handler must not run in the child
    // before run_child has given it its own identity; run_child restores the mask.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = ::fork();
    if (pid == 0) run_child(spec, old);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) throw_os_error("fork", err);

    // Only this process reaps the child, so its pid cannot be reused before the pidfd exists.
    int fd = sys::pidfd_open_raw(pid);
    if (fd < 0) {
        ::kill(pid, SIGKILL);
        static_cast<void>(sys::retry_eintr([&] { return ::waitpid(pid, nullptr, 0); }));
        throw_os_error("pidfd_open", -fd);
    }
    return std::make_unique<DirectChild>(pid, UniqueFd(fd));
}

}  // namespace mp::detail
