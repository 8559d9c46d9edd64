// Robust process-shared pthread mutexes, for state in shared memory that a process may be
// killed while changing (the queues' producer, consumer and allocator sections). When a
// holder dies, the next locker is told so (Locked::owner_died) and holds the mutex, already
// marked consistent: it repairs what the dead holder left half done, and the mutex stays usable.
#pragma once

#include <pthread.h>

#include "multiproc/timeout.hpp"

namespace mp::sys {

/// What a lock attempt came to.
enum class Locked {
    yes,         // held
    timed_out,   // not held: the deadline passed (or, for try_lock, the mutex is busy)
    owner_died,  // held; its previous holder died holding it
};

/// Initialises *m as process-shared and robust (throws std::system_error).
void robust_mutex_init(pthread_mutex_t* m);
/// Locks *m: a short spin on trylock first (the sections it guards last a few hundred
/// nanoseconds, far less than a futex sleep and wake), then a blocking wait until `deadline`
/// (CLOCK_MONOTONIC). Throws std::system_error on failures other than these.
Locked robust_mutex_lock(pthread_mutex_t* m, detail::Deadline deadline);
/// Takes *m only if it is free now (or its holder died); never blocks, never throws.
Locked robust_mutex_try_lock(pthread_mutex_t* m) noexcept;
/// Unlocks *m (held by the caller).
void robust_mutex_unlock(pthread_mutex_t* m) noexcept;

/// Unlocks a held mutex at scope exit, or earlier through unlock().
class RobustUnlock {
public:
    explicit RobustUnlock(pthread_mutex_t* m) noexcept : m_(m) {}
    RobustUnlock(const RobustUnlock&) = delete;
    RobustUnlock& operator=(const RobustUnlock&) = delete;
    ~RobustUnlock() { unlock(); }
    /// Unlocks now (at most once).
    void unlock() noexcept {
        if (m_) robust_mutex_unlock(m_);
        m_ = nullptr;
    }

private:
    pthread_mutex_t* m_;
};

}  // namespace mp::sys
