#include "sys/io.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "multiproc/errors.hpp"
#include "sys/syscall.hpp"

namespace mp::sys {

std::size_t read_full(int fd, void* buf, std::size_t n) {
    auto* p = static_cast<char*>(buf);
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = retry_eintr([&] { return ::read(fd, p + got, n - got); });
        if (r == 0) break;
        if (r < 0) {
            if (errno == ECONNRESET) break;  // a peer that died with unread data: end of file
            throw_os_error("read");
        }
        got += static_cast<std::size_t>(r);
    }
    return got;
}

static void throw_write_error(const char* what) {
    if (errno == EPIPE || errno == ECONNRESET)
        throw EOFError(std::string("multiproc: ") + what + ": the other end is closed");
    throw_os_error(what);
}

void write_all(int fd, const void* buf, std::size_t n) {
    iovec iov{const_cast<void*>(buf), n};
    writev_all(fd, &iov, 1);
}

void writev_all(int fd, iovec* iov, int iovcnt) {
    while (iovcnt > 0) {
        // On a pipe whose reader is gone this raises SIGPIPE unless the program ignores it;
        // sockets should go through send_all (MSG_NOSIGNAL) instead.
        ssize_t r = retry_eintr([&] { return ::writev(fd, iov, iovcnt); });
        if (r < 0) throw_write_error("writev");
        advance_iov(iov, iovcnt, static_cast<std::size_t>(r));
    }
}

void advance_iov(iovec*& iov, int& iovcnt, std::size_t done) noexcept {
    while (iovcnt > 0 && done >= iov->iov_len) {
        done -= iov->iov_len;
        ++iov;
        --iovcnt;
    }
    if (iovcnt > 0) {
        iov->iov_base = static_cast<char*>(iov->iov_base) + done;
        iov->iov_len -= done;
    }
}

int poll_until(pollfd* fds, std::size_t n, detail::Deadline deadline) {
    for (;;) {
        int r = ::poll(fds, n, deadline.poll_ms());
        if (r >= 0) {
            // poll's millisecond rounding can wake a hair early; only a passed deadline ends it.
            if (r == 0 && !deadline.is_forever() && !deadline.expired()) continue;
            return r;
        }
        if (errno != EINTR) throw_os_error("poll");
        if (deadline.expired()) return 0;
    }
}

bool wait_readable(int fd, detail::Deadline deadline) {
    pollfd p{fd, POLLIN, 0};
    return poll_until(&p, 1, deadline) > 0;
}

PipeFds make_pipe() {
    int fds[2];
    check(::pipe2(fds, O_CLOEXEC), "pipe2");
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

PipeFds make_socketpair(int type) {
    int fds[2];
    check(::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds), "socketpair");
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void set_nonblocking(int fd, bool on) {
    int fl = check(::fcntl(fd, F_GETFL), "fcntl(F_GETFL)");
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    check(::fcntl(fd, F_SETFL, fl), "fcntl(F_SETFL)");
}

}  // namespace mp::sys
