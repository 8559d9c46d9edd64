// Notifier (detail/engine.hpp): blocking waits on a futex counter, woken by notify_all.
#include "multiproc/detail/engine.hpp"
#include "sys/futex.hpp"

namespace mp::detail {

void Notifier::notify_all() noexcept {
    seq_.fetch_add(1, std::memory_order_seq_cst);
    if (waiting_.load(std::memory_order_seq_cst) != 0) sys::futex_wake_all(seq_);
}

bool Notifier::block(std::uint32_t seen, Deadline deadline) {
    return sys::futex_wait(seq_, seen, deadline, sys::Interruptible::yes);
}

}  // namespace mp::detail
