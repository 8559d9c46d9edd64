#include "owner_tid.hpp"


#include <cerrno>

#include "sys/pidfd.hpp"
#include "sys/process.hpp"

namespace mp::detail {

namespace {

void reset_tid_after_fork() noexcept {
    // The child's only thread is a copy of the forking thread but has a TID of its own; with
    // the parent's cached it would believe it holds the parent's locks.
    t_tid = 0;
}

}  // namespace

[[gnu::noinline]] std::uint32_t fetch_tid() {
    static const bool registered = [] {
        sys::on_fork_child(reset_tid_after_fork);
        return true;
    }();
    static_cast<void>(registered);
    t_tid = static_cast<std::uint32_t>(sys::current_tid());
    return t_tid;
}

bool thread_alive(std::uint32_t tid) {
    const pid_t id = static_cast<pid_t>(tid);
    const int fd = sys::pidfd_open_raw(id);
    if (fd >= 0) {
        // Exited: every thread of the process has, only its zombie remains.
        const detail::UniqueFd pidfd(fd);
        return !sys::pidfd_exited(pidfd.get());
    }
    if (fd == -ESRCH) return false;
    // EINVAL: the id exists but names a thread that leads no process: a live thread (threads
    // other than the leader are reaped as they exit). EMFILE, ENOSYS...: ask kill(2).
    if (fd == -EINVAL) return true;
    return sys::send_signal(id, 0) != -ESRCH;
}

}  // namespace mp::detail
