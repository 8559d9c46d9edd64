// Cryptographically random bytes (getrandom): authentication keys and challenges, and the
// names of shared-memory segments.
#pragma once

#include <cstddef>

namespace mp::sys {

/// Fills buf with n random bytes from the kernel's CSPRNG (getrandom, EINTR retried).
void random_bytes(void* buf, std::size_t n);

/// Fills buf with n random bytes from the kernel's CSPRNG by way of a per-process buffer that
/// one getrandom refills for many calls (an authentication challenge each connection). The
/// buffer's page is wiped in a forked child (MADV_WIPEONFORK), so a child never hands out
/// bytes its parent had, or will have, handed out; bytes are erased from it as they are taken.
/// Without that kernel support (before Linux 4.14) every call is a getrandom. Thread-safe.
void random_bytes_buffered(void* buf, std::size_t n);

}  // namespace mp::sys
