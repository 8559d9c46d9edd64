// The `fork` start method (CPython's popen_fork.py) and DirectChild, the Popen of any child
// this process made itself (fork now, spawn next).
#include <fcntl.h>
#include <signal.h>
#include <sys/single_threaded.h>
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

std::optional<int> DirectChild::reap(std::unique_lock<std::mutex>& lk, bool block) {
    for (;;) {
        if (code_) return code_;
        siginfo_t si;
        std::memset(&si, 0, sizeof si);
        if (reaper_) {
            // Another thread is in a reaping waitid: reaping here would steal its status. Still
            // running (not even a zombie) means there is nothing to wait for yet; otherwise its
            // code is a moment away (ECHILD: that thread has reaped it and wants the lock).
            if (!block) {
                int r = sys::retry_eintr([&] {
                    return ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOHANG | WNOWAIT);
                });
                if (r == 0 && si.si_pid == 0) return std::nullopt;
            }
            reaped_.wait(lk);
            continue;
        }
        int r;
        if (block) {
            // One waitid that waits and reaps, without the lock, so that other threads can
            // still poll, signal or time out meanwhile (they see reaper_ and leave it the child).
            reaper_ = true;
            lk.unlock();
            r = sys::retry_eintr([&] { return ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED); });
            const int err = errno;
            lk.lock();
            reaper_ = false;
            errno = err;
        } else {
            r = sys::retry_eintr(
                [&] { return ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOHANG); });
        }
        if (r == -1) {
            const int err = errno;
            reaped_.notify_all();
            if (err == ECHILD)
                throw ProcessError("multiproc: child " + std::to_string(pid_) +
                                   " was reaped by someone else (SIGCHLD ignored, or a waitpid(-1) "
                                   "elsewhere); its exit code is lost");
            throw_os_error("waitid", err);
        }
        if (si.si_pid == 0) return std::nullopt;  // WNOHANG: still running
        code_ = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
        reaped_.notify_all();
        return code_;
    }
}

std::optional<int> DirectChild::poll() {
    std::unique_lock lk(m_);
    return reap(lk, false);
}

std::optional<int> DirectChild::wait(Deadline deadline) {
    if (deadline.is_forever()) {
        std::unique_lock lk(m_);
        return reap(lk, true);
    }
    if (auto c = poll()) return c;
    // Wait on the pidfd without the lock, so that other threads can still poll or signal.
    // Readable means the child is a zombie (or already reaped by a concurrent waiter), so the
    // blocking reap returns at once.
    if (pidfd_.get() < 0 || !sys::wait_readable(pidfd_.get(), deadline)) return poll();
    std::unique_lock lk(m_);
    return reap(lk, true);
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

// Threads of this process; 1 when unknown. glibc's __libc_single_threaded stays true until a
// first thread is created, which makes the common case free; after that one stat(2): the kernel
// reports a task directory's link count as 2 + its threads.
int thread_count() noexcept {
    if (__libc_single_threaded) return 1;
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

// Hot (as run_child): the child returns from fork() into this function's code.
[[gnu::hot]] std::unique_ptr<Popen> launch_fork(const LaunchSpec& spec) {
    warn_if_multithreaded_fork();
    // Buffered output written before start() must not be printed twice (once by each process).
    flush_std_streams();
    // Allocated before fork, for the same reason: a page written while the child shares it is
    // copied (and the child rarely lives long enough for that to be amortised).
    auto popen = std::make_unique<DirectChild>();
    // Signals are not blocked across fork (CPython does not either): the first thing the child
    // does is adopt its identity, so a handler running in it sees at worst the parent's name
    // for the few instructions before.
    pid_t pid = ::fork();
    // The child moves the caller's pointer to its identity into place (its own copy of the
    // caller's stack): no reference count is written, in the child or here.
    if (pid == 0) run_child(std::move(spec.child), *spec.target);
    if (pid < 0) throw_os_error("fork");

    // Only this process reaps the child, so its pid cannot be reused before the pidfd exists.
    int fd = sys::pidfd_open_raw(pid);
    if (fd < 0) {
        ::kill(pid, SIGKILL);
        static_cast<void>(sys::retry_eintr([&] { return ::waitpid(pid, nullptr, 0); }));
        throw_os_error("pidfd_open", -fd);
    }
    popen->adopt(pid, UniqueFd(fd));
    return popen;
}

}  // namespace mp::detail
