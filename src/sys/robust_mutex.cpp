#include "sys/robust_mutex.hpp"

#include <cerrno>

#include "multiproc/errors.hpp"
#include "sys/cpu_relax.hpp"
#include "sys/timespec.hpp"

namespace mp::sys {
namespace {

// EOWNERDEAD hands the mutex over in an inconsistent state; marking it consistent at once is
// what keeps it usable (the caller repairs the data before unlocking).
Locked locked_from(pthread_mutex_t* m, int r, const char* what) {
    switch (r) {
        case 0: return Locked::yes;
        case EBUSY:
        case ETIMEDOUT: return Locked::timed_out;
        case EOWNERDEAD: ::pthread_mutex_consistent(m); return Locked::owner_died;
        default: throw_os_error(what, r);
    }
}

}  // namespace

void robust_mutex_init(pthread_mutex_t* m) {
    pthread_mutexattr_t a;
    ::pthread_mutexattr_init(&a);
    ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    const int r = ::pthread_mutex_init(m, &a);
    ::pthread_mutexattr_destroy(&a);
    if (r) throw_os_error("pthread_mutex_init", r);
}

Locked robust_mutex_lock(pthread_mutex_t* m, detail::Deadline deadline) {
    int r = EBUSY;
    for (int i = 0; i < 200 && r == EBUSY; ++i) {
        r = ::pthread_mutex_trylock(m);
        if (r == EBUSY) cpu_relax();
    }
    if (r == EBUSY) {
        if (deadline.is_forever()) {
            r = ::pthread_mutex_lock(m);
        } else if (deadline.expired()) {
            return Locked::timed_out;
        } else {
            const timespec ts = monotonic_timespec(*deadline.at());
            r = ::pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
        }
    }
    return locked_from(m, r, "pthread_mutex_lock");
}

Locked robust_mutex_try_lock(pthread_mutex_t* m) noexcept {
    const int r = ::pthread_mutex_trylock(m);
    if (r == EOWNERDEAD) {
        ::pthread_mutex_consistent(m);
        return Locked::owner_died;
    }
    return r == 0 ? Locked::yes : Locked::timed_out;
}

void robust_mutex_unlock(pthread_mutex_t* m) noexcept { ::pthread_mutex_unlock(m); }

}  // namespace mp::sys
