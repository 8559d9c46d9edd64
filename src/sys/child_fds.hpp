// The descriptors a child keeps: a child gets exactly the ones it is given, at known numbers,
// and nothing else of its parent's. Fork-child safe: no allocation, no lock, no exception.
#pragma once

#include <span>

namespace mp::sys {

/// Puts fds[i] at descriptor 3 + i (close-on-exec), then closes every descriptor above them.
/// An entry of -1 leaves its number closed. Rewrites `fds` while it works.
void place_child_fds(std::span<int> fds) noexcept;
/// Closes every descriptor from 3 up except `a` and `b`.
void close_fds_except(int a, int b) noexcept;
/// Sets or clears close-on-exec on fd; 0 or -errno.
int set_cloexec(int fd, bool on) noexcept;
/// stdin and stdout onto /dev/null and the working directory to /: a long-lived helper holds
/// no pipe of the program open (its readers would never see end-of-file) and no directory.
void leave_program_files() noexcept;

}  // namespace mp::sys
