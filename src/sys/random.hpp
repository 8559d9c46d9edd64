// Cryptographically random bytes (getrandom): authentication keys and challenges, and the
// names of shared-memory segments.
#pragma once

#include <cstddef>

namespace mp::sys {

/// Fills buf with n random bytes from the kernel's CSPRNG (getrandom, EINTR retried).
void random_bytes(void* buf, std::size_t n);

}  // namespace mp::sys
