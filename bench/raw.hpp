// The "raw" baseline's toolbox: the same workloads written plainly with system calls, nothing
// from multiproc, so that a row's ratio multiproc/raw is the library's own overhead. Every call
// is the obvious one (socketpair, fork, read, write, waitpid); EINTR is retried, short reads
// and writes loop, and any failure throws (the harness reports it and the run fails).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>

#include "harness.hpp"

namespace bench::raw {

/// Owns one descriptor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    ~Fd() { close(); }
    /// The descriptor (still owned).
    [[nodiscard]] int get() const { return fd_; }
    /// Closes it now (not retried on EINTR: Linux has closed it already).
    void close() {
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    }

private:
    int fd_ = -1;
};

/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): the same kind of channel as a duplex Pipe.
inline std::pair<Fd, Fd> socket_pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) fail_errno("socketpair");
    return {Fd(sv[0]), Fd(sv[1])};
}

/// Writes all n bytes.
inline void write_all(int fd, const void* buf, std::size_t n) {
    auto* p = static_cast<const char*>(buf);
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail_errno("write");
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

/// Reads at most n bytes (at least 1); throws at end of file.
inline std::size_t read_some(int fd, void* buf, std::size_t n) {
    for (;;) {
        ssize_t r = ::read(fd, buf, n);
        if (r > 0) return static_cast<std::size_t>(r);
        if (r == 0) fail("read: unexpected end of file");
        if (errno != EINTR) fail_errno("read");
    }
}

/// Reads exactly n bytes; throws at end of file.
inline void read_full(int fd, void* buf, std::size_t n) {
    auto* p = static_cast<char*>(buf);
    while (n > 0) {
        std::size_t r = read_some(fd, p, n);
        p += r;
        n -= r;
    }
}

/// Receives exactly n bytes with recv(MSG_WAITALL) (the kernel loops); throws at end of file.
inline void recv_full(int fd, void* buf, std::size_t n) {
    auto* p = static_cast<char*>(buf);
    while (n > 0) {
        ssize_t r = ::recv(fd, p, n, MSG_WAITALL);
        if (r == 0) fail("recv: unexpected end of file");
        if (r < 0) {
            if (errno == EINTR) continue;
            fail_errno("recv");
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
}

/// Forks a child that runs body() and exits with _exit (0 on return, 1 if it threw: the
/// parent's atexit handlers and static destructors never run in the child).
template <class F>
pid_t fork_child(F&& body) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == -1) fail_errno("fork");
    if (pid == 0) {
        int code = 0;
        try {
            body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "raw child: %s\n", e.what());
            code = 1;
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    return pid;
}

/// Waits for pid; throws unless it exited with status 0.
inline void wait_child(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) == -1)
        if (errno != EINTR) fail_errno("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("child " + std::to_string(pid) + " failed (status " + std::to_string(status) + ")");
}

}  // namespace bench::raw
