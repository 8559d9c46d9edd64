// Kernel thread ids as owner marks in shared memory (the word of a Lock/RLock, a queue slot
// being written): the calling thread's id, cached per thread, and whether an id still names a
// live thread, so that a waiter can tell an owner that died from one that is slow.
//
// A thread id identifies its thread for as long as it lives: no two live threads share one,
// and a forked child's thread gets its own (the cached id is dropped in the child). Linux hands
// ids out cyclically, so a dead owner's id is reused only after pid_max others.
#pragma once

#include <cstdint>

#include "multiproc/detail/thread_id.hpp"  // t_tid, the cache the inline lock paths read

namespace mp::detail {

/// Reads the calling thread's id into t_tid (first call per thread, and after a fork).
std::uint32_t fetch_tid();

/// The calling thread's kernel thread id (Linux ids are below 2^22).
inline std::uint32_t my_tid() {
    const std::uint32_t t = t_tid;
    return t ? t : fetch_tid();
}

/// Whether `tid` names a live thread. A zombie (killed, not yet reaped by its parent) is dead.
bool thread_alive(std::uint32_t tid);

}  // namespace mp::detail
