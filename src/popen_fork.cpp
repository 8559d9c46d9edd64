// The `fork` start method (CPython's popen_fork.py) and DirectChild, the Popen of any child
// this process made itself.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "multiproc/errors.hpp"
#include "multiproc/logging.hpp"
#include "popen.hpp"
#include "sys/eventfd.hpp"
#include "sys/io.hpp"
#include "sys/pidfd.hpp"
#include "sys/process.hpp"
#include "sys/sigmask.hpp"
#include "sys/wait.hpp"

namespace mp::detail {

std::optional<int> DirectChild::reap_locked() {
    if (code_) return code_;
    int code = 0;
    const int r = sys::reap_child_nohang(pid_, code);
    if (r == -ECHILD)
        throw ProcessError("multiproc: child " + std::to_string(pid_) +
                           " was reaped by someone else (SIGCHLD ignored, or a waitpid(-1) "
                           "elsewhere); its exit code is lost");
    if (r < 0) throw_os_error("waitid", -r);
    if (r == 0) return std::nullopt;  // still running
    code_ = code;
    return code_;
}

int DirectChild::sentinel_locked() const noexcept {
    if (pidfd_ || closed_) return pidfd_.get();
    if (code_ || gone_) {
        // Reaped: the pid may belong to another process by now. An eventfd holding 1 is
        // readable for good, which is all a sentinel of an ended child has to be.
        pidfd_ = sys::make_ready_eventfd();
        return pidfd_.get();
    }
    // Not reaped (only this object reaps, under m_, which we hold): the pid is still the child's.
    const int fd = sys::pidfd_open_raw(pid_);
    if (fd >= 0) pidfd_ = UniqueFd(fd);
    return pidfd_.get();
}

int DirectChild::sentinel() const noexcept {
    std::lock_guard lk(m_);
    return sentinel_locked();
}

std::optional<int> DirectChild::poll() {
    std::lock_guard lk(m_);
    return reap_locked();
}

std::optional<int> DirectChild::wait(Deadline deadline) {
    if (deadline.is_forever()) {
        {
            std::lock_guard lk(m_);
            if (code_) return code_;
        }
        // Wait without reaping (WNOWAIT) and without the lock, so that other threads can still
        // poll, signal or time out; then reap under the lock, which keeps the pid the child's
        // for as long as anyone holds the lock. ECHILD: a concurrent poll reaped it first.
        if (const int r = sys::wait_child_ended(pid_); r < 0 && r != -ECHILD)
            throw_os_error("waitid", -r);
        std::lock_guard lk(m_);
        return reap_locked();
    }
    int fd;
    {
        std::lock_guard lk(m_);
        if (auto c = reap_locked()) return c;
        fd = sentinel_locked();
    }
    // Readable means the child has ended (the descriptor stays open: only close() closes it,
    // and close() must not race with other calls).
    if (fd < 0) throw_os_error("pidfd_open", EMFILE);
    static_cast<void>(sys::wait_readable(fd, deadline));
    return poll();
}

void DirectChild::send_signal(int sig) {
    std::lock_guard lk(m_);
    if (code_ || gone_) return;  // reaped: the pid may already belong to another process
    if (pidfd_) {
        int r = sys::pidfd_send_signal(pidfd_.get(), sig);
        if (r < 0 && r != -ESRCH) throw_os_error("pidfd_send_signal", -r);
        return;
    }
    // Not reaped, and nobody reaps but us under this lock: the pid is still the child's.
    if (const int r = sys::send_signal(pid_, sig); r < 0 && r != -ESRCH) throw_os_error("kill", -r);
}

void DirectChild::close() noexcept {
    std::lock_guard lk(m_);
    pidfd_.reset();
    closed_ = true;
}

namespace {

std::atomic<bool> g_warned{false};

}  // namespace

void warn_if_multithreaded_fork() {
    if (g_warned.load(std::memory_order_relaxed)) return;
    const int threads = sys::thread_count();
    if (threads <= 1 || g_warned.exchange(true)) return;
    // Python 3.12's DeprecationWarning, once per process, through the logger (one write).
    log_lazily(LogLevel::warning, [&] {
        return "this process (pid=" + std::to_string(sys::current_pid()) + ") is multi-threaded (" +
               std::to_string(threads) +
               " threads); use of fork() may lead to deadlocks in the child.";
    });
}

void reset_fork_warning_for_testing() noexcept { g_warned.store(false); }

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
    const pid_t pid = sys::fork_process();
    // The child moves the caller's pointer to its identity into place (its own copy of the
    // caller's stack): no reference count is written, in the child or here.
    if (pid == 0) run_child(std::move(spec.child), *spec.target);

    // DirectChild opens the pidfd on first use (sentinel, timed join): a pidfd is a file the
    // kernel allocates and frees at every start. Unless the kernel reaps our children itself
    // (SIGCHLD ignored, or SA_NOCLDWAIT): then the pid may be reused behind our back, and the
    // pidfd is opened now; ESRCH means the child has already ended and been reaped.
    UniqueFd pidfd;
    bool gone = false;
    if (sys::kernel_reaps_children()) {
        int fd = sys::pidfd_open_raw(pid);
        if (fd >= 0) {
            pidfd = UniqueFd(fd);
        } else if (fd == -ESRCH) {
            gone = true;
        } else {
            static_cast<void>(sys::send_signal(pid, SIGKILL));
            throw_os_error("pidfd_open", -fd);
        }
    }
    popen->adopt(pid, std::move(pidfd), gone);
    return popen;
}

}  // namespace mp::detail
