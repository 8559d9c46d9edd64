// A raw child process (made by fork or posix_spawn, not mp::Process) for the tests that must
// shape the child themselves: its pid, owned, so that a test failing before it joins still
// leaves no child behind; and reading a child's report from a pipe to its end.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstddef>
#include <utility>
#include <vector>

#include "sys/io.hpp"

namespace mp::test {

/// Owns a child's pid: the destructor kills (SIGKILL) and reaps a child not joined yet.
class RawChild {
public:
    RawChild() = default;
    explicit RawChild(pid_t pid) noexcept : pid_(pid) {}
    RawChild(RawChild&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}
    RawChild& operator=(RawChild&& o) noexcept {
        if (this != &o) {
            reap();
            pid_ = std::exchange(o.pid_, -1);
        }
        return *this;
    }
    ~RawChild() { reap(); }
    /// Waits for the child: its exit code, or -signal (as Python's exitcode).
    int join() {
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    /// The pid (-1 once joined).
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

private:
    void reap() noexcept {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        join();
    }
    pid_t pid_ = -1;
};

/// Everything a child writes on `fd` until it closes its end.
inline std::vector<std::byte> read_to_eof(int fd) {
    std::vector<std::byte> all;
    std::byte buf[4096];
    for (;;) {
        const std::size_t n = mp::sys::read_full(fd, buf, sizeof buf);
        all.insert(all.end(), buf, buf + n);
        if (n < sizeof buf) return all;
    }
}

}  // namespace mp::test
