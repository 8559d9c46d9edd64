// Captures what this process (and its children, which inherit the descriptor) writes to a
// descriptor, usually 2 (stderr), into a memfd for the test to read back.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "multiproc/detail/fd.hpp"
#include "popen.hpp"

namespace mp::test {

/// Redirects `fd` to a memory file from construction until finish() (or destruction).
class Capture {
public:
    /// Starts capturing fd (C stdio buffers are flushed first).
    explicit Capture(int fd) : fd_(fd) {
        mp::detail::flush_std_streams();
        saved_ = detail::UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
        file_ = detail::UniqueFd(::memfd_create("capture", MFD_CLOEXEC));
        if (!saved_ || !file_ || ::dup2(file_.get(), fd) < 0) throw std::runtime_error("capture");
    }
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;
    /// Restores the descriptor.
    ~Capture() { restore(); }
    /// Restores the descriptor and returns everything written to it.
    std::string finish() {
        restore();
        std::string out;
        char buf[4096];
        off_t off = 0;
        for (ssize_t n; (n = ::pread(file_.get(), buf, sizeof buf, off)) > 0; off += n)
            out.append(buf, static_cast<std::size_t>(n));
        return out;
    }

private:
    void restore() {
        if (!saved_) return;
        mp::detail::flush_std_streams();
        ::dup2(saved_.get(), fd_);
        saved_.reset();
    }
    int fd_;
    detail::UniqueFd saved_, file_;
};

}  // namespace mp::test
