// The OS layer's two rules in one place: EINTR is retried (never for close), and a failure
// becomes std::system_error with the errno and the call's name (mp::throw_os_error).
#pragma once

#include <cerrno>

#include "multiproc/errors.hpp"

namespace mp::sys {

/// Calls f() until it does not fail with EINTR; returns its last result (errno intact).
template <class F>
auto retry_eintr(F&& f) {
    for (;;) {
        auto r = f();
        if (r == -1 && errno == EINTR) continue;
        return r;
    }
}

/// Returns r, or throws std::system_error naming `what` when r == -1.
template <class R>
R check(R r, const char* what) {
    if (r == -1) throw_os_error(what);
    return r;
}

/// retry_eintr + check.
template <class F>
auto check_retry(F&& f, const char* what) {
    return check(retry_eintr(static_cast<F&&>(f)), what);
}

}  // namespace mp::sys
