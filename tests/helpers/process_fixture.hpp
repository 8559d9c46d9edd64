// The fixture of the Process tests (tests/process_test.cpp, tests/process_exit_test.cpp) and
// the small protocol their children report through: length-prefixed strings on a pipe whose end
// travels to the child as a PassFd handle.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "multiproc/context.hpp"
#include "multiproc/process.hpp"
#include "sys/io.hpp"

namespace mp::test {

/// Writes s to fd as a 32-bit length and the bytes.
inline void write_str(int fd, const std::string& s) {
    std::uint32_t n = static_cast<std::uint32_t>(s.size());
    mp::sys::write_all(fd, &n, sizeof n);
    mp::sys::write_all(fd, s.data(), s.size());
}

/// Reads a string write_str wrote; "<eof>" when the writer went away first.
inline std::string read_str(int fd) {
    std::uint32_t n = 0;
    if (mp::sys::read_full(fd, &n, sizeof n) != sizeof n) return "<eof>";
    std::string s(n, '\0');
    if (mp::sys::read_full(fd, s.data(), n) != n) return "<eof>";
    return s;
}

/// Whether fd becomes readable within t.
inline bool readable(int fd, mp::Timeout t) {
    return mp::sys::wait_readable(fd, mp::detail::Deadline(t));
}

/// How many times needle occurs in hay.
inline int count(const std::string& hay, const std::string& needle) {
    int n = 0;
    for (auto pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1))
        ++n;
    return n;
}

/// Sleeps until a signal ends the process.
[[noreturn]] inline void block_forever() {
    for (;;) ::pause();
}

// A descriptor handed to a child as a Process argument: a handle, so it reaches the child under
// every start method (spawn and forkserver children inherit only what they are given; a
// descriptor number captured in a lambda means nothing there).
struct PassFd {
    int fd = -1;
    /// Ships the descriptor beside the bytes.
    void save(mp::Encoder& e) const { e.add_fd(fd); }
    /// Takes the received descriptor (the child keeps it open for good).
    void load(mp::Decoder& d) { fd = d.take_fd().release(); }
};

/// A Process test run once per start method.
class ProcessTest : public ::testing::TestWithParam<std::string> {
protected:
    /// The context of this test's start method.
    mp::Context ctx() const { return mp::get_context(GetParam()); }
};

}  // namespace mp::test
