// Notifier (detail/engine.hpp): blocking waits on a private eventfd, woken by notify_all.
#include "multiproc/detail/engine.hpp"
#include "sys/eventfd.hpp"
#include "sys/io.hpp"

namespace mp::detail {

void Notifier::notify_all() noexcept {
    if (count_.load(std::memory_order_seq_cst) == 0) return;
    std::lock_guard lk(m_);
    for (int fd : waiters_) sys::signal_eventfd(fd);
}

Notifier::Registration::Registration(Notifier& n) : n_(n), fd_(sys::make_eventfd()) {
    std::lock_guard lk(n_.m_);
    n_.waiters_.push_back(fd_.get());
    n_.count_.fetch_add(1, std::memory_order_seq_cst);
}

Notifier::Registration::~Registration() {
    std::lock_guard lk(n_.m_);
    std::erase(n_.waiters_, fd_.get());
    n_.count_.fetch_sub(1, std::memory_order_seq_cst);
}

bool Notifier::Registration::block(Deadline deadline) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (sys::poll_until(&p, 1, deadline, sys::Interruptible::yes) == 0) return false;
    sys::drain_eventfd(fd_.get());
    return true;
}

}  // namespace mp::detail
