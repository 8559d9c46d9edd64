#include "sys/io.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "multiproc/errors.hpp"
#include "sys/signals.hpp"
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

int poll_until(pollfd* fds, std::size_t n, detail::Deadline deadline, Interruptible i) {
    const int sig = sigint_fd(i);
    // Armed: the SIGINT eventfd rides along as one more entry, so the wait ends in whichever
    // thread the kernel chose for the signal.
    std::vector<pollfd> with_sig;
    if (sig >= 0) {
        with_sig.assign(fds, fds + n);
        with_sig.push_back({sig, POLLIN, 0});
    }
    pollfd* set = sig >= 0 ? with_sig.data() : fds;
    const std::size_t count = sig >= 0 ? n + 1 : n;
    const int r = wait_until(deadline, i, sig >= 0, [&](detail::Deadline until) -> int {
        // ppoll: a deadline microseconds away is kept, where poll's milliseconds round it up.
        timespec rel{};
        timespec* timeout = nullptr;
        if (!until.is_forever()) {
            const auto ns = std::max<std::int64_t>(until.remaining().count(), 0);
            rel = {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
            timeout = &rel;
        }
        int ready = ::ppoll(set, count, timeout, nullptr);
        if (ready > 0 && sig >= 0 && set[n].revents) {
            --ready;
            if (ready == 0) {
                sigint_fd_settle();
                errno = EINTR;  // only SIGINT's entry: wait_until consumes it and throws
                return -1;
            }
        }
        return ready;
    });
    if (r < 0) throw_os_error("poll");
    if (sig >= 0) std::copy_n(with_sig.begin(), n, fds);
    return r;
}

bool wait_readable(int fd, detail::Deadline deadline, Interruptible i) {
    pollfd p{fd, POLLIN, 0};
    return poll_until(&p, 1, deadline, i) > 0;
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

bool is_terminal(int fd) noexcept { return ::isatty(fd) == 1; }

void write_stderr(std::string_view msg) noexcept {
    static_cast<void>(write_once(2, msg.data(), msg.size()));
}

ssize_t read_once(int fd, void* buf, std::size_t n) noexcept {
    return retry_eintr([&] { return ::read(fd, buf, n); });
}

ssize_t write_once(int fd, const void* buf, std::size_t n) noexcept {
    return retry_eintr([&] { return ::write(fd, buf, n); });
}

std::size_t pread_some(int fd, void* buf, std::size_t n, std::uint64_t offset) {
    return static_cast<std::size_t>(
        check_retry([&] { return ::pread(fd, buf, n, static_cast<off_t>(offset)); }, "pread"));
}

}  // namespace mp::sys
